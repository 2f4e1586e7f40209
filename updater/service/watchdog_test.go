package service

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/install/installtest"
)

// TestWatchdogFollowsProgress: the watchdog is fed only while the loop
// beats or a bounded step is within its bound.
func TestWatchdogFollowsProgress(t *testing.T) {
	every := 2 * time.Minute
	var w watchdog
	w.beat()
	now := time.Now()
	if !w.alive(now, every) {
		t.Error("just beat: not alive")
	}
	if w.alive(now.Add(every), every) {
		t.Error("a loop stuck for a whole interval is still fed")
	}
	w.busy(5 * time.Minute)
	if !w.alive(now.Add(4*time.Minute), every) {
		t.Error("a health check within its deadline starves the watchdog")
	}
	if w.alive(now.Add(6*time.Minute), every) {
		t.Error("a step past its bound is still fed")
	}
	w.busy(0)
	if w.alive(now.Add(4*time.Minute), every) {
		t.Error("a finished step still counts as busy")
	}
}

// TestWatchdogFollowsThePace: fed from a download's pace (on a fake
// clock), the watchdog stays fed while bytes come at 64 kbit/s and stops
// once a drip of one byte every 150 ms falls behind, when the download
// ends with ErrTooSlow.
func TestWatchdogFollowsThePace(t *testing.T) {
	clk := installtest.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	every := 2 * time.Minute
	w := watchdog{now: clk.Now}
	w.beat()
	pace := &install.Pace{Name: "root", Size: 300 << 20, Now: clk.Now, Beat: w.beat}
	fast := pace.Reader((&installtest.Throttle{Clock: clk, Rate: install.MinRate}).Wrap(io.NopCloser(zeroes{})))
	buf := make([]byte, 1<<10)
	for range 10 * 60 * 8 { // 10 minutes at 64 kbit/s
		if _, err := fast.Read(buf); err != nil {
			t.Fatal(err)
		}
		if !w.alive(clk.Now(), every) {
			t.Fatal("at 64 kbit/s the watchdog starves")
		}
	}
	drip := pace.Reader((&installtest.Throttle{Clock: clk, Burst: 1, Delay: 150 * time.Millisecond}).Wrap(io.NopCloser(zeroes{})))
	start := clk.Now()
	var err error
	for err == nil && clk.Now().Sub(start) < time.Hour {
		_, err = drip.Read(buf)
		if err == nil && !w.alive(clk.Now(), every) {
			t.Fatal("the watchdog starves while the download keeps the pace")
		}
	}
	if !errors.Is(err, install.ErrTooSlow) {
		t.Fatalf("a drip after 10 minutes at 64 kbit/s: %v after %s", err, clk.Now().Sub(start))
	}
	clk.Advance(every / 2)
	if w.alive(clk.Now(), every) {
		t.Error("the watchdog is still fed after the download fell behind")
	}
	t.Logf("the drip was cut after %s: %v", clk.Now().Sub(start)-every/2, err)
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }
