package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path, token string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPage: the page, its script and style, the health endpoint, and the
// headers that keep the page to its own script.
func TestPage(t *testing.T) {
	h, err := handler("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, ctype, want string }{
		{"/", "text/html", `<script src="app.js" defer></script>`},
		{"/app.js", "javascript", `fetch("api/messages?limit=100"`},
		{"/style.css", "text/css", "#health.ok"},
		{"/healthz", "text/plain", "ok"},
	} {
		r := get(t, h, c.path, "")
		b := body(t, r)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), c.ctype) || !strings.Contains(b, c.want) {
			t.Errorf("%s: %d %s, want %s with %q", c.path, r.StatusCode, r.Header.Get("Content-Type"), c.ctype, c.want)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", c.path, csp)
		}
	}
	if r := get(t, h, "/api/messages", ""); r.StatusCode != http.StatusNotFound {
		t.Errorf("/api/messages without -api: %d, want 404 (the proxy routes /api)", r.StatusCode)
	}
}

// TestPageIsSelfContained: nothing is loaded from elsewhere, and the
// backend's data is never inserted as HTML.
func TestPageIsSelfContained(t *testing.T) {
	fs.WalkDir(page, "page", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := page.ReadFile(p)
		s := string(b)
		for _, bad := range []string{"http://", "https://", "innerHTML", "outerHTML", "document.write", "localStorage"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
		return nil
	})
}

// TestAPIForward: with -api, /api/ reaches the backend with the user's
// token and the backend's answer comes back unchanged.
func TestAPIForward(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"token"}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"path":%q,"query":%q}`, r.URL.Path, r.URL.RawQuery)
	}))
	defer backend.Close()
	h, err := handler(backend.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := get(t, h, "/api/messages?limit=100", "tok"); r.StatusCode != http.StatusOK || body(t, r) != `{"path":"/api/messages","query":"limit=100"}` {
		t.Errorf("forwarded: %d", r.StatusCode)
	}
	if r := get(t, h, "/api/messages", "other"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want the backend's 401", r.StatusCode)
	}
	for _, bad := range []string{"127.0.0.1:8081", "ftp://x", "http://"} {
		if _, err := handler(bad, nil); err == nil {
			t.Errorf("-api %q accepted", bad)
		}
	}
}

// TestRun: the program serves on -listen, its -check passes against it,
// and it stops when its context ends.
func TestRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-listen", addr}, io.Discard) }()
	deadline := time.Now().Add(5 * time.Second)
	for run(context.Background(), []string{"-check", "http://" + addr + "/healthz"}, io.Discard) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the dashboard never got healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := run(context.Background(), []string{"-check", "http://" + addr + "/nope"}, io.Discard); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("-check of a missing page: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if err := run(context.Background(), []string{"-listen", addr, "-api", "nope"}, io.Discard); err == nil {
		t.Error("a bad -api was accepted")
	}
}
