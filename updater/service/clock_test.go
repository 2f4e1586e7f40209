package service

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestClockGate(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	t0 := time.Unix(1_700_000_000, 0)
	synced := false
	g := newClockGate(t0, 90*time.Second, func() bool { return synced })

	// Unsynchronised, within the wait: hold, say so once.
	if d := g.hold(t0, log); d != 2*time.Second {
		t.Fatalf("hold at start = %s, want 2s", d)
	}
	if d := g.hold(t0.Add(89*time.Second), log); d != time.Second {
		t.Fatalf("hold 1 s before the end = %s, want 1s", d)
	}
	if n := strings.Count(buf.String(), "waiting for a synchronised clock"); n != 1 {
		t.Fatalf("waiting said %d times:\n%s", n, buf.String())
	}
	// The wait is over: go ahead, warn once, never hold again.
	for i := 0; i < 3; i++ {
		if d := g.hold(t0.Add(time.Duration(90+i)*time.Second), log); d != 0 {
			t.Fatalf("hold after the wait = %s, want 0", d)
		}
	}
	if n := strings.Count(buf.String(), "clock is not synchronised"); n != 1 {
		t.Fatalf("warning said %d times:\n%s", n, buf.String())
	}

	// Synchronised while waiting: go at once.
	buf.Reset()
	g = newClockGate(t0, time.Hour, func() bool { return synced })
	if d := g.hold(t0, log); d == 0 {
		t.Fatal("an unsynchronised clock went ahead at once")
	}
	synced = true
	if d := g.hold(t0.Add(5*time.Second), log); d != 0 {
		t.Fatalf("hold once synchronised = %s, want 0", d)
	}
	if !strings.Contains(buf.String(), "clock synchronised") {
		t.Fatalf("no word of the synchronisation:\n%s", buf.String())
	}

	// No wait configured: never hold.
	g = newClockGate(t0, 0, func() bool { return false })
	if d := g.hold(t0, log); d != 0 {
		t.Fatalf("time_wait 0 held for %s", d)
	}
}
