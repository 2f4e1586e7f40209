package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/internal/servicetest"
	devreport "github.com/pibake/pibake/updater/report"
)

// storyFleet is the team's MQTT broker for the update story: Debian's
// Mosquitto on the host's loopback, which the device reaches at
// serverName:1883 through a guestfwd, with the device's own login
// (given by first-boot provisioning) and an operator's. It records every
// report the device makes while the story runs (issue 25: the QEMU story
// reports, and `pibake fleet status` shows it).
type storyFleet struct {
	t        *testing.T
	broker   *servicetest.Mosquitto
	password string
	ops      fleet.Broker
	cancel   context.CancelFunc
	done     chan struct{}

	mu     sync.Mutex
	states []devreport.State
	bad    []error
}

const storyDevice = "box-e2e"

func startStoryFleet(t *testing.T) *storyFleet {
	t.Helper()
	f := &storyFleet{t: t, password: "E2E-fleet-" + fmt.Sprint(time.Now().UnixNano()), done: make(chan struct{})}
	f.broker = servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users: map[string]string{storyDevice: f.password, "ops": "ops-password"},
		ACL: map[string][]string{
			storyDevice: {"write " + devreport.DefaultPrefix + "/devices/" + storyDevice + "/#"},
			"ops":       {"read " + devreport.DefaultPrefix + "/devices/#"},
		},
	})
	f.ops = fleet.Broker{URL: f.broker.URL(), Username: "ops", Password: "ops-password"}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() {
		defer close(f.done)
		err := fleet.Subscribe(ctx, f.ops, func(ev fleet.Event) {
			f.mu.Lock()
			defer f.mu.Unlock()
			switch {
			case ev.Err != nil:
				f.bad = append(f.bad, ev.Err)
			case ev.State != nil:
				f.states = append(f.states, *ev.State)
			}
		})
		if err != nil {
			t.Errorf("following the story's broker: %v", err)
		}
	}()
	return f
}

// updaterYAML is the definition's report block for the story's device.
func (f *storyFleet) updaterYAML() string {
	return "report:\n  broker: tcp://" + serverName + ":1883\n  heartbeat: 1m\n"
}

// provisionYAML is the device's login, for the provisioning file.
func (f *storyFleet) provisionYAML() string {
	return "fleet:\n  user: " + storyDevice + "\n  password: \"" + f.password + "\"\n"
}

// relay is the guestfwd command that carries the device's MQTT connection
// to the broker.
func (f *storyFleet) relay() (guest, cmd string) {
	return serverAddr + ":1883", guestRelay(f.t, f.broker.Addr())
}

// check stops following and says whether the reports told the story:
// each step in want is a report matching it, in that order.
func (f *storyFleet) check(want []func(devreport.State) bool, names []string) {
	t := f.t
	t.Helper()
	// The last reports (the fallback of v3) are sent as the device comes
	// up; give the broker's retained copy a moment to arrive.
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.mu.Lock()
		i := matchInOrder(f.states, want)
		f.mu.Unlock()
		if i == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	f.cancel()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := matchInOrder(f.states, want); i < len(want) {
		t.Errorf("the device's reports to the broker never said %q (%d reports received; the last: %+v)", names[i], len(f.states), last(f.states))
	}
	for _, err := range f.bad {
		t.Errorf("a malformed report from the device: %v", err)
	}
	t.Logf("the device sent %d state reports to the broker during the story", len(f.states))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := fleet.Collect(ctx, f.ops, fleet.StatusOptions{})
	if err != nil {
		t.Errorf("pibake fleet status: %v", err)
		return
	}
	var b bytes.Buffer
	if err := fleet.Print(&b, st, time.Now()); err != nil {
		t.Error(err)
	}
	t.Logf("pibake fleet status at the end of the story:\n%s", b.String())
	if !strings.Contains(b.String(), storyDevice) {
		t.Errorf("pibake fleet status does not list %s", storyDevice)
	}
}

func matchInOrder(states []devreport.State, want []func(devreport.State) bool) int {
	i := 0
	for _, s := range states {
		if i < len(want) && want[i](s) {
			i++
		}
	}
	return i
}

func last(states []devreport.State) any {
	if len(states) == 0 {
		return nil
	}
	s := states[len(states)-1]
	return struct {
		Version, Slot string
		Last          *devreport.Attempt
	}{s.Version, s.Slot, s.Last}
}

// running matches a report of the device running version in slot.
func running(version, slot string) func(devreport.State) bool {
	return func(s devreport.State) bool { return s.Version == version && s.Slot == slot }
}

// gaveUp matches a report whose last update of version ended in result
// with a check naming check.
func gaveUp(version, result, check string) func(devreport.State) bool {
	return func(s devreport.State) bool {
		return s.Last != nil && s.Last.Version == version && s.Last.Result == result && strings.Contains(s.Last.Check, check)
	}
}
