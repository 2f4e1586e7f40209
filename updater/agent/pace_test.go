package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/install/installtest"
	"github.com/pibake/pibake/updater/state"
)

// The tests in this file are the device on a slow or hostile link: a
// throttled repository on a fake clock, and the service's watchdog on the
// same clock.

// rewritten is release 1.0, and every later version 1.0 with 2.5 MiB of
// each artifact rewritten: patches of about 2.5 MB, 5 minutes each at
// 64 kbit/s.
func rewritten(name, version string) []byte {
	if version == "1.0" {
		return release(name, version)
	}
	key := "rewritten " + name + " " + version
	if b, ok := releases.Load(key); ok {
		return b.([]byte)
	}
	b := bytes.Clone(release(name, "1.0"))
	r := rand.New(rand.NewPCG(uint64(name[0]), uint64(len(version))))
	for i := 256 << 10; i < 256<<10+5<<19; i++ {
		b[i] = byte(r.Uint32())
	}
	releases.Store(key, b)
	return b
}

// errKilled is the watchdog's SIGABRT.
var errKilled = errors.New("killed by the watchdog")

// dog is the service's watchdog on the test's clock: the agent is killed
// once 120 s (WatchdogSec) pass without a beat. gap is the longest time
// between two beats (the service stops feeding systemd after 60 s).
type dog struct {
	mu     sync.Mutex
	clk    *installtest.Clock
	last   time.Time
	gap    time.Duration
	killed atomic.Bool
	kill   context.CancelFunc
}

func newDog(clk *installtest.Clock, kill context.CancelFunc) *dog {
	return &dog{clk: clk, last: clk.Now(), kill: kill}
}

func (w *dog) beat() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clk.Now()
	w.gap = max(w.gap, now.Sub(w.last))
	w.last = now
}

// check runs on every read of the repository: the time a download takes
// passes there.
func (w *dog) check(int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.clk.Now().Sub(w.last) > 120*time.Second {
		w.gap = max(w.gap, w.clk.Now().Sub(w.last))
		w.killed.Store(true)
		w.kill()
		return errKilled
	}
	return nil
}

// killable is the state store as a killed agent leaves it: nothing is
// saved after the kill.
type killable struct {
	state.Store
	dead *atomic.Bool
}

func (k killable) Save(st state.State) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Save(st)
}

// slowLink is a device settled on release 1.0 of data, offered 2.0 with
// its chunk indexes and patches from 1.0, over HTTP through th.
type slowLink struct {
	d   *device
	r   *repo
	url string
	th  *installtest.Throttle
}

func newSlowLink(t *testing.T, data func(name, version string) []byte, th *installtest.Throttle) *slowLink {
	t.Helper()
	r := newRepo(t)
	d := newDeviceWith(deltaPart, data)
	r.publishData(t, "stable", "1.0", func(n string) []byte { return data(n, "1.0") }, false)
	srv := httptest.NewServer(http.FileServer(http.Dir(r.dir)))
	t.Cleanup(srv.Close)
	s := &slowLink{d: d, r: r, url: srv.URL, th: th}
	if err := d.agent(r, d.boot.PowerOn()).AfterBoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.publishData(t, "stable", "2.0", func(n string) []byte { return data(n, "2.0") }, false)
	r.addChunks(t, "stable", func(n string) []byte { return data(n, "1.0") })
	return s
}

// agent is the device's agent for one life: on the throttle's clock,
// beating w, saving nothing once w killed it.
func (s *slowLink) agent(w *dog) *Agent {
	a := s.d.agent(s.r, bootchain.A)
	a.Source = install.HTTP{Base: s.url, Client: &http.Client{Transport: s.th.Transport(http.DefaultTransport)}}
	a.Running = func(sl bootchain.Slot) (Readable, Readable, error) {
		return s.d.part(sl, "boot"), s.d.part(sl, "root"), nil
	}
	a.Now, a.Beat = s.th.Clock.Now, w.beat
	a.Store = killable{a.Store, &w.killed}
	return a
}

// patches lists the patch files of the chunk document, boot's first.
func (s *slowLink) patches(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.r.dir, channel.ChunksPath("stable")))
	if err != nil {
		t.Fatal(err)
	}
	var c channel.Chunks
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range c.Patches {
		out = append(out, p.Path)
	}
	return out
}

// TestSlowPatchFeedsTheWatchdog: patches of 2.5 MB at 64 kbit/s take
// 5 minutes each; the watchdog is fed all along, the agent is never
// killed, and each patch is downloaded once.
func TestSlowPatchFeedsTheWatchdog(t *testing.T) {
	clk := installtest.NewClock(now)
	th := &installtest.Throttle{Clock: clk, Rate: install.MinRate, MaxTime: 24 * time.Hour}
	s := newSlowLink(t, rewritten, th)
	lives := 0
	var longest time.Duration
	for lives < 3 {
		lives++
		ctx, cancel := context.WithCancel(context.Background())
		w := newDog(clk, cancel)
		th.OnRead = w.check
		err := s.agent(w).Update(ctx)
		cancel()
		longest = max(longest, w.gap)
		if !w.killed.Load() {
			if err != nil {
				t.Fatalf("life %d: %v", lives, err)
			}
			break
		}
		t.Logf("life %d: killed by the watchdog after %s without a beat (%d bytes downloaded in all)", lives, w.gap, th.Sent())
	}
	ps := s.patches(t)
	if lives != 1 || !s.d.holds(bootchain.B, "2.0") {
		t.Fatalf("installed in %d lives of the agent, slot B holds 2.0: %v", lives, s.d.holds(bootchain.B, "2.0"))
	}
	for _, p := range ps {
		if n := th.Opened(p); n != 1 {
			t.Errorf("patch %s downloaded %d times", p, n)
		}
	}
	if longest > time.Minute {
		t.Errorf("the watchdog went %s without a beat", longest)
	}
	t.Logf("%d bytes in %s, at most %s between two beats", th.Sent(), clk.Now().Sub(now), longest)
}

// TestPatchTriedOnceAcrossAKill: an agent killed in the middle of a
// patch's download (the watchdog, a crash, a power cut) is not sent back
// to the same patch: the restarted agent writes that artifact from
// chunks, so a link that cannot carry the patch in time cannot hold the
// device in a loop.
func TestPatchTriedOnceAcrossAKill(t *testing.T) {
	clk := installtest.NewClock(now)
	th := &installtest.Throttle{Clock: clk, Rate: install.MinRate, MaxTime: 24 * time.Hour}
	s := newSlowLink(t, rewritten, th)
	ps := s.patches(t)
	ctx, cancel := context.WithCancel(context.Background())
	w := newDog(clk, cancel)
	th.Only = func(p string) bool { return p == ps[0] }
	th.OnRead = func(int) error {
		if th.Sent() > 1<<20 {
			w.killed.Store(true)
			cancel()
			return errKilled
		}
		return nil
	}
	if err := s.agent(w).Update(ctx); err == nil {
		t.Fatal("the first life was not killed")
	}
	cancel()
	th.OnRead = nil
	w = newDog(clk, func() {})
	if err := s.agent(w).Update(context.Background()); err != nil {
		t.Fatalf("after the kill: %v", err)
	}
	if n := th.Opened(ps[0]); n != 1 || !s.d.holds(bootchain.B, "2.0") {
		t.Fatalf("the patch the first life was killed in was downloaded %d times; slot B holds 2.0: %v", n, s.d.holds(bootchain.B, "2.0"))
	}
	st, _ := s.d.store.Load()
	t.Logf("installed after the kill: %+v", st.LastInstall)
}

// TestDripServerFailsCleanly: a repository that drip-feeds its artifacts
// (one byte per connection, one byte every 150 ms) ends the install
// within the slowest link's grace, with the reason in the state; the slot
// being written stays out of the rotation, the running one untouched, and
// the next poll can start again.
func TestDripServerFailsCleanly(t *testing.T) {
	for _, tc := range []struct {
		name string
		th   *installtest.Throttle
	}{
		{"one byte per connection", &installtest.Throttle{Burst: 1, PerConn: 1, MaxConns: 1000}},
		{"one byte per 150 ms", &installtest.Throttle{Burst: 1, Delay: 150 * time.Millisecond, MaxTime: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := installtest.NewClock(now)
			th := tc.th
			th.Clock = clk
			th.Only = func(p string) bool { return strings.HasPrefix(p, channel.BlobsDir+"/") }
			s := newSlowLink(t, release, th)
			w := newDog(clk, func() {})
			th.OnRead = w.check
			a := s.agent(w)
			a.Download = Download{Attempts: 5, Backoff: time.Microsecond}
			var seen []install.Reading
			a.Report = func(r install.Reading) { seen = append(seen, r) }
			err := a.Update(context.Background())
			took := clk.Now().Sub(now)
			if errors.Is(err, installtest.ErrCap) || took > 3*install.Grace || !errors.Is(err, install.ErrTooSlow) {
				t.Fatalf("after %s, %d connections: %v", took, th.Conns(), err)
			}
			st, _ := s.d.store.Load()
			if st.Trial != nil || !strings.Contains(st.LastError, "too slow") {
				t.Errorf("state after the drip: trial %+v, last error %q", st.Trial, st.LastError)
			}
			if w.killed.Load() || w.gap > time.Minute {
				t.Errorf("the watchdog went %s without a beat", w.gap)
			}
			if len(seen) == 0 || seen[len(seen)-1].Fetched == 0 {
				t.Errorf("the service was told %d readings of the download", len(seen))
			}
			if s.d.boot.PowerOn() != bootchain.A || !s.d.holds(bootchain.A, "1.0") {
				t.Error("the running slot was touched, or the one being written boots")
			}
			t.Logf("ended after %s and %d connections: %v", took, th.Conns(), err)
		})
	}
}

// TestRepublishedRolloutIsNotReinstalled: a release re-published with a
// larger rollout (a new serial, the same artifacts) is not installed
// again on a device that committed it: the device records the serial and
// stays. The same version with other bytes is installed.
func TestRepublishedRolloutIsNotReinstalled(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rebuild bool
	}{{"same artifacts", false}, {"same version, other bytes", true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := settledOn(t, r)
			agentOn := func(s bootchain.Slot) *Agent {
				a := d.agent(r, s, check{"api", nil})
				a.Running = func(sl bootchain.Slot) (Readable, Readable, error) {
					return d.part(sl, "boot"), d.part(sl, "root"), nil
				}
				return a
			}
			r.publish(t, "2.0", false)
			if err := agentOn(bootchain.A).Update(ctx); err != nil {
				t.Fatal(err)
			}
			booted := d.boot.PowerOn()
			if err := agentOn(booted).AfterBoot(ctx); err != nil || booted != bootchain.B {
				t.Fatalf("trial of 2.0 in %s: %v", booted, err)
			}
			if tc.rebuild {
				r.publishData(t, "stable", "2.0", func(n string) []byte { return append(content(n, "2.0"), "rebuilt"...) }, false)
			} else {
				doc, _ := os.ReadFile(filepath.Join(r.dir, channel.DocumentPath("stable")))
				var dd channel.Document
				if err := json.Unmarshal(doc, &dd); err != nil {
					t.Fatal(err)
				}
				r.serial++
				dd.Serial, dd.Rollout = r.serial, 1
				r.sign(t, &dd, "stable")
			}
			err := agentOn(booted).Update(ctx)
			st, _ := d.store.Load()
			if tc.rebuild {
				if err != nil || st.Trial == nil {
					t.Fatalf("2.0 rebuilt: %v, trial %+v", err, st.Trial)
				}
				return
			}
			if !errors.Is(err, ErrNothingNew) || st.Trial != nil || st.Serials["stable"] != r.serial || st.Slots["b"].Serial != r.serial || st.Committed != "b" {
				t.Fatalf("re-published 2.0: %v, state %+v", err, st)
			}
			if s := d.boot.PowerOn(); s != bootchain.B || !d.holds(bootchain.A, "1.0") {
				t.Fatalf("re-published 2.0: booted %s, slot A still holds 1.0: %v", s, d.holds(bootchain.A, "1.0"))
			}
			if err := agentOn(bootchain.B).Update(ctx); !errors.Is(err, ErrNothingNew) {
				t.Errorf("the next poll: %v", err)
			}
		})
	}
}

// slowCard is a partition whose reads take time on the test's clock, as
// a slow card's do.
type slowCard struct {
	*vpart
	clk  *installtest.Clock
	rate float64 // bytes per second
}

func (s slowCard) ReadAt(p []byte, off int64) (int, error) {
	s.clk.Advance(time.Duration(float64(len(p)) / s.rate * float64(time.Second)))
	return s.vpart.ReadAt(p, off)
}

// TestReadBackFeedsTheWatchdog: the read-back of an artifact against its
// signed sha256 (after a download, and of an artifact written before a
// restart) feeds the watchdog, however slow the card: a large root read
// at a card's pace takes minutes.
func TestReadBackFeedsTheWatchdog(t *testing.T) {
	clk := installtest.NewClock(now)
	r := newRepo(t)
	d := newDeviceWith(deltaPart, release)
	r.publishData(t, "stable", "1.0", func(n string) []byte { return release(n, "1.0") }, false)
	if err := d.agent(r, d.boot.PowerOn()).AfterBoot(ctx); err != nil {
		t.Fatal(err)
	}
	r.publishData(t, "stable", "2.0", func(n string) []byte { return release(n, "2.0") }, false)
	for _, life := range []string{"install", "after a restart"} {
		w := newDog(clk, func() {})
		a := d.agent(r, bootchain.A)
		a.Now, a.Beat = clk.Now, w.beat
		a.Slots = func(s bootchain.Slot) (install.Target, install.Target, error) {
			return slowCard{d.part(s, "boot"), clk, 32 << 10}, slowCard{d.part(s, "root"), clk, 32 << 10}, nil
		}
		if life == "after a restart" {
			st, _ := d.store.Load()
			st.Trial = nil // recorded, never armed: the next poll verifies what was written
			d.store.Save(st)
		}
		if err := a.Update(ctx); err != nil {
			t.Fatalf("%s: %v", life, err)
		}
		w.beat()
		if w.gap > time.Minute {
			t.Errorf("%s: the watchdog went %s without a beat", life, w.gap)
		}
	}
}
