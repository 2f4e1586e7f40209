package fleetsim

import (
	"testing"
	"time"
)

// TestPollsJittered: the devices poll on the service's schedule (a
// first poll a minute after the boot, then the interval with the
// device's own ±10%), not in lockstep. The clock moves a minute at a
// time for two hours of an idle fleet that was booted together: each
// device polls every 13.5 to 16.5 minutes (7 to 9 polls in the two
// hours, the first one included), and once the first turn is over no
// minute holds half the fleet's polls.
func TestPollsJittered(t *testing.T) {
	n := min(size(t), 200)
	s := newSim(t, n)
	total, busiest := int64(0), int64(0)
	for m := 1; m <= 120; m++ {
		before := s.traffic.Now()
		if err := s.fleet.Round(s.ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		polls := s.traffic.Now().Sub(before).Requests / 2 // the document and its signature
		total += polls
		if m > 20 {
			busiest = max(busiest, polls)
		}
		if total > int64(n)*10 {
			t.Fatalf("after %d minutes %d devices polled %d times: more than once per 13.5 minutes", m, n, total)
		}
	}
	if total < int64(n)*7 || total > int64(n)*9 {
		t.Errorf("in two hours %d devices polled %d times, want 7 to 9 each", n, total)
	}
	if busiest*2 >= int64(n) {
		t.Errorf("after the first turn one minute held %d polls of %d devices: the fleet polls in lockstep", busiest, n)
	}
	t.Logf("in two hours %d devices polled %d times (%.2f each); after the first 20 minutes the busiest minute held %d polls", n, total, float64(total)/float64(n), busiest)
}
