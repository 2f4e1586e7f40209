package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTP(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 2 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (HTTP{URL: srv.URL}).Run(ctx); err != nil {
		t.Errorf("a service that comes up: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := (HTTP{URL: srv.URL, Status: 204}).Run(ctx); err == nil || !strings.Contains(err.Error(), "status 200, want 204") {
		t.Errorf("wrong status: %v", err)
	}
}

func TestCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := (Command{Argv: []string{"/bin/true"}}).Run(ctx); err != nil {
		t.Error(err)
	}
	err := (Command{Argv: []string{"/bin/sh", "-c", "echo database not ready; exit 3"}}).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "database not ready") {
		t.Errorf("failing command: %v", err)
	}
}

func TestUnit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := (Unit{Unit: "pibake-no-such-unit.service"}).Run(ctx)
	if err != nil && strings.Contains(err.Error(), "connect to systemd") {
		t.Skipf("no systemd on this machine: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "inactive") {
		t.Errorf("missing unit: %v", err)
	}
}
