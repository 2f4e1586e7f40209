package fleetsim

import (
	"context"
	"testing"
	"time"
)

// TestBrokerRestartLosesNoReport: the broker is stopped in the middle of
// a rollout (devices downloading, rebooting into trials, committing)
// and started again. Reporting never holds an update up, and at the end
// a fresh subscriber finds every device's latest state retained on the
// broker: nothing a device reported while the broker was away is lost.
func TestBrokerRestartLosesNoReport(t *testing.T) {
	n := size(t)
	s := newSim(t, n)
	if _, err := s.repo.Publish(s.ctx, "2.0.0", "", s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.fleet.Turn(s.ctx) }()
	// The broker goes when the first devices have committed: others are
	// downloading, rebooting into their trials or still to poll.
	for wait := time.Now(); s.fleet.Running()["2.0.0"] == 0 && time.Since(wait) < 60*time.Second; {
		time.Sleep(100 * time.Millisecond)
	}
	s.broker.Stop()
	down := time.Now()
	stopped := s.fleet.Running()["2.0.0"]
	time.Sleep(2 * time.Second)
	s.broker.Start()
	t.Logf("the broker was down for %s while %d of %d devices had committed 2.0.0", time.Since(down).Round(time.Millisecond), stopped, n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if running := s.fleet.Running(); running["2.0.0"] != n {
		t.Fatalf("after the turn: %v, want all %d on 2.0.0 (reporting must not hold an update up)", running, n)
	}
	if stopped == 0 || stopped == n {
		t.Logf("the restart did not fall in the middle of the rollout (%d of %d had committed): the machine was faster or slower than expected", stopped, n)
	}
	// A fresh subscriber sees only what the broker retained.
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	fresh := s.ops
	fresh.ClientID = "ops-after-restart"
	obs, err := Observe(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if missing := obs.Settle(s.fleet.Devices, 60*time.Second); len(missing) > 0 {
		t.Fatalf("after the restart the broker lacks the latest state of %d devices, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	t.Logf("every device's latest state was on the broker %s after the turn ended", time.Since(began).Round(time.Millisecond))
}
