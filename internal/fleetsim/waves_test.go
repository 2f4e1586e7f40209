package fleetsim

import (
	"testing"
	"time"

	"github.com/pibake/pibake/updater/agent"
)

// TestGoodReleaseInWaves: 2.0.0 is published in three waves (10% at
// once, 50% from 30 minutes, everyone from an hour); the devices poll
// on the service's schedule (every 15 minutes ±10%, the device's own) by
// the injected clock, the clock their agents judge waves and expiry by. No device takes it before its wave, and every
// device runs it after the last wave. Then an idle hour measures what
// the polls cost when nothing is new.
func TestGoodReleaseInWaves(t *testing.T) {
	n := size(t)
	s := newSim(t, n)
	began := time.Now()
	doc, err := s.repo.Publish(s.ctx, "2.0.0", "10%@0h,50%@30m,100%@1h", s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	msgs0, _ := s.obs.Messages()
	traffic0 := s.traffic.Now()
	for r := 1; ; r++ {
		roundBegan := time.Now()
		s.round("round " + time.Duration(r*int(poll)).String())
		now := s.clock.Now()
		open := doc.RolloutAt(now)
		for _, d := range s.fleet.Devices {
			if d.Report().Version == "2.0.0" && !agent.InRollout(d.ID, doc.Image+"/"+doc.Version, open) {
				t.Fatalf("at %s (rollout %.0f%%) %s runs 2.0.0 before its wave", now.Format(time.TimeOnly), open*100, d.Name)
			}
		}
		running := s.fleet.Running()
		t.Logf("after %s: rollout %3.0f%%, %5d devices run 2.0.0 (round: %s)", now.Sub(start), open*100, running["2.0.0"], time.Since(roundBegan).Round(time.Millisecond))
		if running["2.0.0"] == n {
			break
		}
		if r == 8 {
			t.Fatalf("after 2 hours only %d of %d devices run 2.0.0: %v", running["2.0.0"], n, running)
		}
	}
	msgs, bad := s.obs.Messages()
	if bad != 0 {
		t.Errorf("%d malformed reports", bad)
	}
	for _, d := range s.fleet.Devices {
		if st := d.State(); st.Committed == "" || st.Slots[st.Committed].Version != "2.0.0" || len(st.Failed) != 0 {
			t.Fatalf("%s: committed %q holds %+v, failed %v", d.Name, st.Committed, st.Slots[st.Committed], st.Failed)
		}
	}
	rollout := time.Since(began)
	moved := s.traffic.Now().Sub(traffic0)
	t.Logf("the rollout served %d requests, %.1f KiB per device (documents, chunk indexes, patches and the ranges they lack, every poll's document and signature)",
		moved.Requests, float64(moved.Out)/float64(n)/1024)
	idleAfter := s.clock.Now().Sub(start)
	idle := s.idle()
	if idle.Requests == 0 || idle.NotModified != idle.Requests {
		t.Errorf("the idle hour: %d of %d requests answered 304 Not Modified, want all (the agent asks for the channel's files conditionally and pibake serve answers 304)", idle.NotModified, idle.Requests)
	}
	t.Logf("the rollout to %d devices took %s of wall time; %.1f broker messages per device for the update (the state at each change)",
		n, rollout.Round(time.Millisecond), float64(msgs-msgs0)/float64(n))
	printFigures(t, n, idle, idleAfter, float64(msgs-msgs0)/float64(n))
}

// idle is an hour of the clock with nothing new: the traffic of the
// polls the devices' schedules make in it.
func (s *sim) idle() idleRound {
	s.t.Helper()
	before, polls, minutes := s.traffic.Now(), s.fleet.Polls(), len(s.fleet.Minutes())
	began := time.Now()
	if err := s.fleet.Round(s.ctx, time.Hour); err != nil {
		s.t.Fatalf("the idle hour: %v", err)
	}
	s.settle("the idle hour")
	r := idleRound{Figures: s.traffic.Now().Sub(before), Wall: time.Since(began), Polls: s.fleet.Polls() - polls, Span: time.Hour}
	for _, m := range s.fleet.Minutes()[minutes:] {
		r.Busiest = max(r.Busiest, m)
	}
	return r
}
