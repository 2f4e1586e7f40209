// Command edge-backend is the Go backend of the reference edge stack
// (images/essensys-edge.yaml, docs/edge-stack.md): it subscribes to an
// MQTT topic on Mosquitto, stores every message it receives in a Redis
// list, and serves them as JSON. pibake builds it from this source with
// `build: {go: examples/edge-backend}` into a one-binary image.
//
//	GET /api/messages  the newest messages, newest first (?limit=N);
//	                   needs "Authorization: Bearer TOKEN"
//	GET /healthz       200 when MQTT is connected and Redis answers,
//	                   503 otherwise (also at /api/healthz)
//
// The Redis password, the MQTT user and password and the API token are
// read from files in the -secrets folder (on the data partition), never
// from flags, the environment or the image, and never printed.
// `edge-backend -check URL` is its own health check (the image has no
// curl): exit 0 when URL answers 200.
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	// As the container's PID 1 it gets no default signal handling: stop
	// cleanly on SIGTERM (podman stop) and exit 0.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "edge-backend:", err)
		}
		os.Exit(1)
	}
}

// run is the whole program: the check mode, or the service until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.check != "" {
		return check(ctx, cfg.check)
	}
	sec, warnings, err := readSecrets(cfg.secrets)
	if err != nil {
		return err
	}
	red, err := newRedactor(stderr, sec.redisPassword, sec.mqttPassword, sec.apiToken)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(red, nil))
	for _, w := range warnings {
		log.Warn(w)
	}
	if err := serve(ctx, cfg, sec, log); err != nil {
		return errors.New(red.redact(err.Error()))
	}
	return nil
}

// serve runs the MQTT session, the queue's writer and the HTTP server
// until ctx ends.
func serve(ctx context.Context, cfg config, sec secrets, log *slog.Logger) error {
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set -listen or EDGE_LISTEN)", cfg.listen, err)
	}
	st := &store{redis: &redisClient{addr: cfg.redis, password: sec.redisPassword, timeout: 3 * time.Second}, key: cfg.key, keep: cfg.keep}
	q := newQueue(1024)
	sub := newSubscriber(subscriberConfig{url: cfg.mqttURL, clientID: cfg.clientID, topic: cfg.topic, user: sec.mqttUser, password: sec.mqttPassword}, q, log)
	a := &api{store: st, sub: sub, queue: q, token: sha256.Sum256([]byte(sec.apiToken)), version: cfg.version, log: log}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	drainCtx, stopDrain := context.WithCancel(context.Background())
	drained := make(chan struct{})
	go func() { q.drain(drainCtx, st, log); close(drained) }()
	sub.start()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("edge-backend listening", "version", cfg.version, "addr", ln.Addr().String(), "mqtt", cfg.mqttURL, "topic", cfg.topic, "redis", cfg.redis, "key", cfg.key)

	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	sub.stop()
	// Messages already acknowledged to the broker get 2 s to reach Redis.
	for end := time.Now().Add(2 * time.Second); q.pending.Load() > 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	stopDrain()
	<-drained
	log.Info("edge-backend stopped", "unstored", q.pending.Load())
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", cfg.listen, err)
	}
	return nil
}

// check GETs url and returns nil on 200.
func check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("-check %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("-check: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("-check %s: %s", url, resp.Status)
	}
	return nil
}
