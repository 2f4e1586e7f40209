package fleetsim

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/internal/reposerve"
	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install/installtest"
)

// start is when the simulated fleet's clock begins.
var start = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// poll is the agent's default poll interval (updater/config), the
// simulation's default: a round of the tests.
const poll = 15 * time.Minute

// size is the fleet's size: 1,000 in go test, PIBAKE_FLEETSIM_N (make
// bench: 10,000) when set.
func size(t *testing.T) int {
	if s := os.Getenv("PIBAKE_FLEETSIM_N"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("PIBAKE_FLEETSIM_N=%q: want a number of devices", s)
		}
		return n
	}
	if testing.Short() {
		return 100
	}
	return 1000
}

// sim is one scenario's world: the repository and its server, the
// broker, the operator's view of it and the fleet.
type sim struct {
	t       *testing.T
	ctx     context.Context
	clock   *installtest.Clock
	repo    *Repo
	broker  *servicetest.Mosquitto
	ops     fleet.Broker
	traffic *Traffic
	obs     *Observer
	fleet   *Fleet
}

func password(device string) string { return "pw-" + device }

// newSim publishes 1.0.0, flashes n devices with it and boots them,
// each reporting to a Mosquitto with a user per device and the pattern
// ACL of docs/fleet.md.
func newSim(t *testing.T, n int, bad ...string) *sim {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pub, key, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{t: t, ctx: ctx, clock: installtest.NewClock(start), traffic: &Traffic{}}
	s.repo = &Repo{Dir: filepath.Join(t.TempDir(), "repo"), Key: key, Pub: pub, Work: t.TempDir()}
	if _, err := s.repo.Publish(ctx, "1.0.0", "", s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{"ops": "ops-pw"}
	for i := range n {
		users[DeviceName(i+1)] = password(DeviceName(i + 1))
	}
	s.broker = servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users:    users,
		ACL:      map[string][]string{"ops": {"read pibake/devices/#"}},
		Patterns: []string{"write pibake/devices/%u/#"},
	})
	// Mosquitto queues at most 1,000 QoS 1 messages per client by
	// default and drops the rest: an operator subscribing to a fleet of
	// more than 500 devices loses retained reports (two topics each)
	// without it. The broker of a fleet needs a larger queue.
	s.broker.Stop()
	conf := filepath.Join(s.broker.Dir, "mosquitto.conf")
	c, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, append(c, []byte(fmt.Sprintf("max_queued_messages %d\n", 4*n+1000))...), 0o600); err != nil {
		t.Fatal(err)
	}
	s.broker.Start()
	s.ops = fleet.Broker{URL: s.broker.URL(), Username: "ops", Password: "ops-pw", ClientID: "ops-observer-" + t.Name()}
	// The repository is served as pibake serve serves it.
	root, err := os.OpenRoot(s.repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	url, err := Serve(ctx, reposerve.New(root.FS(), nil, reposerve.DefaultLimits), s.traffic)
	if err != nil {
		t.Fatal(err)
	}
	if s.obs, err = Observe(ctx, s.ops); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	s.fleet, err = New(ctx, Options{
		N: n, URL: url, Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		Repo: s.repo.Dir, Trusted: []minisign.PublicKey{pub}, Clock: s.clock, Flashed: "1.0.0", Built: start.Add(-24 * time.Hour),
		Bad: bad, Report: config.Report{Broker: s.broker.URL()}, Password: password,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.settle("the first boot")
	t.Logf("%d devices flashed with 1.0.0, booted and reporting in %s", n, time.Since(began).Round(time.Millisecond))
	return s
}

// settle waits until the broker holds every device's latest state.
func (s *sim) settle(when string) {
	s.t.Helper()
	if missing := s.obs.Settle(s.fleet.Devices, 60*time.Second); len(missing) > 0 {
		s.t.Fatalf("%s: the broker lacks the latest state of %d devices, e.g. %v", when, len(missing), missing[:min(5, len(missing))])
	}
}

// round moves the clock on by a poll interval, each device polling on
// its schedule (none, one or two polls: the interval is ±10%), then the
// reports settle.
func (s *sim) round(when string) {
	s.t.Helper()
	if err := s.fleet.Round(s.ctx, poll); err != nil {
		s.t.Fatalf("%s: %v", when, err)
	}
	s.settle(when)
}

// turn moves the clock on until every device has polled at least once,
// then the reports settle.
func (s *sim) turn(when string) {
	s.t.Helper()
	if err := s.fleet.Turn(s.ctx); err != nil {
		s.t.Fatalf("%s: %v", when, err)
	}
	s.settle(when)
}
