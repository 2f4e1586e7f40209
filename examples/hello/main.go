// Command hello is the demo image's container: a small HTTP service that
// pibake builds from this source into an OCI image (no registry, no
// Docker) and runs with podman (or Docker) on the device.
//
//	GET /         a greeting with the image version and what the data
//	              volume remembers (the version that first started here)
//	GET /healthz  200 ok
//
// `hello -check URL` is its own health check (the image has no curl):
// exit 0 when URL answers 200. `hello -get URL` prints what URL answers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve on")
	data := flag.String("data", "/data", "folder of the persistent volume")
	check := flag.String("check", "", "health check: GET this URL, exit 0 on 200")
	get := flag.String("get", "", "GET this URL and print the body")
	flag.Parse()
	if *check != "" {
		os.Exit(fetch(*check, io.Discard))
	}
	if *get != "" {
		os.Exit(fetch(*get, os.Stdout))
	}
	version := os.Getenv("HELLO_VERSION")
	if version == "" {
		version = "unknown"
	}
	first, err := remember(*data, version)
	if err != nil {
		log.Printf("data volume: %v", err)
		first = "(no data volume: " + err.Error() + ")"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from pibake: container version %s; data volume first written by %s\n", version, first)
	})
	log.Printf("hello %s listening on %s", version, *listen)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	// As the container's PID 1 it gets no default signal handling: stop
	// cleanly on SIGTERM (podman stop, docker stop) and exit 0.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	log.Printf("hello %s stopped", version)
}

// remember returns the version recorded in the data volume, recording
// this one if the volume is new.
func remember(dir, version string) (string, error) {
	p := filepath.Join(dir, "first-version")
	b, err := os.ReadFile(p)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(version+"\n"), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, p); err != nil {
		return "", err
	}
	return version, nil
}

func fetch(url string, out io.Writer) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}
