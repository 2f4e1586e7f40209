package fleetsim

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/channel"
)

// TestBadReleaseHalted: 2.0.0 fails its health check on every device
// (each rolls back to 1.0.0). It is published in three waves, and the
// real rollout watch (fleet.Watch, as pibake rollout watch runs it, at
// 20% of failures after 10 attempts)
// follows the reports on the broker and halts it by re-signing the
// channel with the real publish code. The devices hit are the first
// wave, plus those whose poll was in flight when the halt was signed;
// the later waves never start it.
func TestBadReleaseHalted(t *testing.T) {
	n := size(t)
	s := newSim(t, n, "2.0.0")
	doc, err := s.repo.Publish(s.ctx, "2.0.0", "10%@0h,50%@1h,100%@2h", s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		halted   *channel.Document
		inFlight = map[string]bool{}
	)
	out := &servicetest.SyncBuffer{}
	watchCtx, stop := context.WithCancel(s.ctx)
	defer stop()
	done := make(chan error, 1)
	// pibake rollout watch's default --min-attempts, fewer in a fleet
	// whose first wave is smaller.
	brake := fleet.Brake{MaxFailureRate: 0.2, MinAttempts: min(10, max(1, n/100))}
	watcher := s.ops
	watcher.ClientID = "ops-rollout-watch"
	go func() {
		done <- fleet.Watch(watchCtx, fleet.WatchOptions{
			Broker: watcher, Brake: brake, Channel: Channel,
			Current: s.repo.Current, Once: true, Out: out, Now: s.clock.Now,
			Halt: func() (*channel.Document, error) {
				d, err := s.repo.Halt(s.clock.Now())
				mu.Lock()
				defer mu.Unlock()
				halted = d
				for _, name := range s.fleet.Polling() {
					inFlight[name] = true
				}
				return d, err
			},
		})
	}()
	time.Sleep(time.Second) // the watch subscribes
	for r := 1; r <= 9; r++ {
		s.round("round " + time.Duration(r*int(poll)).String())
		mu.Lock()
		h := halted
		mu.Unlock()
		if h == nil && failedDevices(s.fleet) >= brake.MinAttempts {
			select {
			case err := <-done:
				// It may have halted since halted was read.
				mu.Lock()
				h = halted
				mu.Unlock()
				if h == nil {
					t.Fatalf("the watch ended without halting: %v\n%s", err, out)
				}
				done <- err
			case <-time.After(30 * time.Second):
				t.Fatalf("devices failed 2.0.0 and the watch did not halt it in 30 s:\n%s", out)
			}
		}
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the watch (--once) did not return after its halt:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if halted == nil || !halted.Halted {
		t.Fatalf("not halted:\n%s", out)
	}
	wave1, hit, beyond := 0, 0, 0
	for _, d := range s.fleet.Devices {
		first := agent.InRollout(d.ID, doc.Image+"/"+doc.Version, doc.Waves[0].Fraction)
		if first {
			wave1++
		}
		st := d.State()
		_, failed := st.Failed["2.0.0"]
		started := failed || st.Trial != nil || (st.Download != nil && st.Download.Serial == doc.Serial)
		if !started {
			continue
		}
		hit++
		if !first {
			beyond++
			if !inFlight[d.Name] {
				t.Errorf("%s is not in the first wave and was not polling when the halt was signed, yet it started 2.0.0 (%+v)", d.Name, st)
			}
		}
		if st.Slots[st.Committed].Version == "2.0.0" {
			t.Errorf("%s committed the bad release", d.Name)
		}
	}
	if limit := wave1 + len(inFlight); hit > limit {
		t.Errorf("%d devices started 2.0.0, more than the first wave (%d) plus those in flight at the halt (%d)", hit, wave1, len(inFlight))
	}
	t.Logf("the halt bound: %d of %d devices started the bad release; the first wave holds %d, %d polls were in flight when the halt was signed, %d devices outside the first wave started it", hit, n, wave1, len(inFlight), beyond)
	t.Logf("%d polls read the document and the signature of two signings twice (refused, read again at the next poll)", s.fleet.Torn())
	t.Logf("the watch said:\n%s", out)
	if running := s.fleet.Running(); running["2.0.0"] != 0 {
		t.Errorf("after the halt: %v, want no device on 2.0.0", running)
	}
}

// failedDevices counts the devices that recorded a failed release.
func failedDevices(f *Fleet) int {
	n := 0
	for _, d := range f.Devices {
		if len(d.State().Failed) > 0 {
			n++
		}
	}
	return n
}
