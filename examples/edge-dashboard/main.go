// Command edge-dashboard is the web dashboard of the reference edge stack
// (docs/edge-stack.md): a static page, built into the binary, that shows
// the backend's health and, with the API token the user types, its stored
// messages. The page asks relative URLs (api/healthz, api/messages): the
// proxy in front sends /api to the backend and everything else here.
//
//	GET /         the page (index.html, app.js, style.css)
//	GET /healthz  200 ok
//
// With -api URL it forwards /api/ to the backend itself, for running
// without the proxy. It holds no secret: the token stays in the browser.
// `edge-dashboard -check URL` is its own health check: exit 0 on 200.
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

//go:embed page
var page embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "edge-dashboard:", err)
		}
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// run is the whole program: the check mode, or the server until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fl := flag.NewFlagSet("edge-dashboard", flag.ContinueOnError)
	fl.SetOutput(stderr)
	listen := fl.String("listen", envOr("EDGE_DASHBOARD_LISTEN", "127.0.0.1:8082"), "HTTP address (env EDGE_DASHBOARD_LISTEN); the proxy forwards / here")
	api := fl.String("api", envOr("EDGE_API", ""), "if set, forward /api/ to this backend URL, e.g. http://127.0.0.1:8081 (env EDGE_API); behind the proxy leave it empty")
	check := fl.String("check", "", "health check: GET this URL, exit 0 on 200 (the container's HealthCmd)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see -h)", fl.Arg(0))
	}
	if *check != "" {
		return checkURL(ctx, *check)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	h, err := handler(*api, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set -listen or EDGE_DASHBOARD_LISTEN)", *listen, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("edge-dashboard listening", "addr", ln.Addr().String(), "api", *api)
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutCtx)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", *listen, err)
	}
	return nil
}

// handler serves the page, /healthz and, with api set, /api/ from there.
func handler(api string, log *slog.Logger) (http.Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	files, err := fs.Sub(page, "page")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /", http.FileServerFS(files))
	if api != "" {
		u, err := url.Parse(api)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("-api %q: want the backend's base URL, e.g. http://127.0.0.1:8081", api)
		}
		proxy := &httputil.ReverseProxy{
			Rewrite:  func(r *httputil.ProxyRequest) { r.SetURL(u); r.SetXForwarded() },
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		mux.Handle("GET /api/", proxy)
	}
	return headers(mux), nil
}

// headers adds what keeps the page from running anything but its own
// script and from being cached stale.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// checkURL GETs url and returns nil on 200.
func checkURL(ctx context.Context, url string) error {
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
