package service

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

func TestInhibitors(t *testing.T) {
	dir, sd := t.TempDir(), t.TempDir()
	held := Inhibitors(dir, sd)
	if who := held(); len(who) != 0 {
		t.Fatalf("nothing held: %q", who)
	}
	if who := Inhibitors(filepath.Join(dir, "missing"), filepath.Join(sd, "missing"))(); len(who) != 0 {
		t.Fatalf("no folders: %q", who)
	}
	os.WriteFile(filepath.Join(dir, "recorder"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "a-folder"), 0o755)
	// What logind writes for `systemd-inhibit --what=shutdown:sleep
	// --who=backup --why="copying" ...`, its FIFO beside it, and locks
	// that do not hold a reboot back (delay mode, sleep only).
	lock := func(name, what, mode string) {
		body := fmt.Sprintf("# This is private data. Do not parse.\nWHAT=%s\nMODE=%s\nUID=0\nPID=4242\nWHO=backup\nWHY=copying\nFIFO=%s/%s.ref\n", what, mode, sd, name)
		os.WriteFile(filepath.Join(sd, name), []byte(body), 0o644)
		if err := syscall.Mkfifo(filepath.Join(sd, name+".ref"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lock("1", "shutdown:sleep", "block")
	lock("2", "shutdown", "delay")
	lock("3", "sleep:idle", "block")
	who := held()
	if want := []string{"recorder", "backup (copying)"}; !slices.Equal(who, want) {
		t.Fatalf("held by %q, want %q", who, want)
	}
	os.Remove(filepath.Join(dir, "recorder"))
	os.Remove(filepath.Join(sd, "1"))
	if who := held(); len(who) != 0 {
		t.Fatalf("released: %q", who)
	}
}

func TestNextPoll(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	poll := 15 * time.Minute
	seen := map[time.Duration]bool{}
	for turn := range 50 {
		d := NextPoll(poll, "device-1", turn, nil, nil, now)
		if d < poll*9/10 || d > poll*11/10 {
			t.Fatalf("turn %d: %s outside ±10%% of %s", turn, d, poll)
		}
		if d != NextPoll(poll, "device-1", turn, nil, nil, now) {
			t.Fatal("the jitter is not the device's own")
		}
		seen[d] = true
	}
	if len(seen) < 40 {
		t.Errorf("only %d distinct intervals in 50 turns", len(seen))
	}
	// A busy server's Retry-After is honoured, never shortened.
	busy := fmt.Errorf("channel: %w", &install.BusyError{URL: "u", Status: "429", After: 2 * time.Hour})
	if d := NextPoll(poll, "device-1", 1, busy, nil, now); d != 2*time.Hour {
		t.Errorf("after a 429 asking for 2h: %s", d)
	}
	short := &install.BusyError{URL: "u", Status: "503", After: time.Minute}
	if d := NextPoll(poll, "device-1", 1, short, nil, now); d < poll*9/10 {
		t.Errorf("after a 503 asking for 1m: %s, sooner than the poll", d)
	}
	// A release that waits is checked at the window's opening (plus the
	// device's share of its first minutes), when that comes first.
	w := &state.Waiting{Next: now.Add(5 * time.Minute)}
	if d := NextPoll(poll, "device-1", 1, agent.ErrWaiting, w, now); d < 5*time.Minute || d > 15*time.Minute {
		t.Errorf("window opening in 5m: next poll in %s", d)
	}
	w.Next = now.Add(5 * time.Hour)
	if d := NextPoll(poll, "device-1", 1, agent.ErrWaiting, w, now); d > poll*11/10 {
		t.Errorf("window opening in 5h: next poll in %s", d)
	}
}

func TestStatusWaiting(t *testing.T) {
	next := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	var b strings.Builder
	printText(&b, report{State: state.State{Waiting: &state.Waiting{Release: state.Release{Image: "demo", Version: "2.0"}, Slot: "b",
		Why: "outside the maintenance window", Next: next}}})
	if want := "installed demo 2.0 in slot b, waiting for the window (next: 2026-12-07T01:00:00Z)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status:\n%s\nwant the line %q", b.String(), want)
	}
	b.Reset()
	printText(&b, report{State: state.State{Waiting: &state.Waiting{Release: state.Release{Image: "demo", Version: "2.0"}, Slot: "b",
		Why: "inhibited by recorder", Inhibited: next}}})
	if want := "installed demo 2.0 in slot b, waiting: inhibited by recorder (since 2026-12-07T01:00:00Z)\n"; !strings.Contains(b.String(), want) {
		t.Errorf("status:\n%s\nwant the line %q", b.String(), want)
	}
}

// TestFirstPollSpread: devices that start together (a site whose power
// came back) poll first at their own moment, spread over a tenth of the
// interval after FirstPoll, each device at the same moment every boot.
// The fleet simulation found them all in one minute: FirstPoll alone.
func TestFirstPollSpread(t *testing.T) {
	const poll = 15 * time.Minute
	lo, hi := time.Duration(1<<62), time.Duration(0)
	perMinute := map[time.Duration]int{}
	for i := range 1000 {
		id := "device-" + strconv.Itoa(i)
		d := FirstPollAfter(poll, id)
		if d < FirstPoll || d >= FirstPoll+poll/5 {
			t.Fatalf("%s polls first after %s, want within [%s, %s)", id, d, FirstPoll, FirstPoll+poll/5)
		}
		if d != FirstPollAfter(poll, id) {
			t.Fatalf("%s: its first poll moves between boots", id)
		}
		lo, hi = min(lo, d), max(hi, d)
		perMinute[d.Truncate(time.Minute)]++
	}
	if hi-lo < poll/5*9/10 {
		t.Errorf("1,000 devices' first polls span %s, want most of %s", hi-lo, poll/5)
	}
	for m, n := range perMinute {
		if n > 400 {
			t.Errorf("%d of 1,000 devices poll first in the minute after %s", n, m)
		}
	}
}
