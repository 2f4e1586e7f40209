package health

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
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

// TestCommandDeadline: a command that hangs, and the children it started,
// die at the deadline; its output is bounded.
func TestCommandDeadline(t *testing.T) {
	dir := t.TempDir()
	pidFile := dir + "/child"
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := (Command{Argv: []string{"/bin/sh", "-c", "sleep 60 & echo $! > " + pidFile + "; head -c 100000 /dev/zero | tr '\\0' x; wait"}}).Run(ctx)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("hanging command: %v after %s", err, time.Since(start))
	}
	if len(err.Error()) > OutputLimit+200 {
		t.Errorf("error carries %d bytes of output", len(err.Error()))
	}
	pid, _ := os.ReadFile(pidFile)
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	time.Sleep(100 * time.Millisecond)
	// Alive and not a zombie waiting for a reaper.
	if stat, err := os.ReadFile("/proc/" + strconv.Itoa(n) + "/stat"); n > 0 && err == nil && !strings.Contains(string(stat), ") Z ") {
		syscall.Kill(n, syscall.SIGKILL)
		t.Errorf("the command's child %d outlived the deadline", n)
	}
}

func TestTail(t *testing.T) {
	tl := &tail{max: 8}
	tl.Write([]byte("0123456789"))
	tl.Write([]byte("ab"))
	if got := tl.String(); got != "…456789ab" {
		t.Errorf("%q", got)
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

// TestUnitMustStayActive: a unit that crash-loops (active for a moment on
// every restart) fails; one that stays active passes.
func TestUnitMustStayActive(t *testing.T) {
	var n int
	flapping := func(context.Context) (unitState, error) {
		n++ // each read sees a new activation: systemd restarted it
		return unitState{active: "active", restarts: strconv.Itoa(n), since: strconv.Itoa(n * 1000)}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := stays(ctx, "app.service", 50*time.Millisecond, flapping); err == nil || !strings.Contains(err.Error(), "did not stay active") {
		t.Errorf("crash-looping unit: %v", err)
	}
	steady := func(context.Context) (unitState, error) { return unitState{"active", "0", "5"}, nil }
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := stays(ctx, "app.service", 50*time.Millisecond, steady); err != nil {
		t.Errorf("steady unit: %v", err)
	}
}
