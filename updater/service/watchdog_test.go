package service

import (
	"testing"
	"time"
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
