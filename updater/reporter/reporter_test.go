package reporter

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/state"
)

// broker starts a Mosquitto with the ACL docs/fleet.md gives: each
// device writes its own topics only, the operator reads all.
func broker(t *testing.T, tls bool) *servicetest.Mosquitto {
	return servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users:    map[string]string{"box-1": "p1", "ops": "po"},
		ACL:      map[string][]string{"ops": {"read pibake/devices/#"}},
		Patterns: []string{"write pibake/devices/%u/#"},
		TLS:      tls,
	})
}

// watch collects what the operator sees of box-1 until ctx ends.
type watch struct {
	mu     sync.Mutex
	states []report.State
	online []bool
}

func follow(t *testing.T, ctx context.Context, m *servicetest.Mosquitto) *watch {
	w := &watch{}
	go func() {
		err := fleet.Subscribe(ctx, fleet.Broker{URL: m.URL(), CAFile: m.CAFile, Username: "ops", Password: "po"}, func(ev fleet.Event) {
			w.mu.Lock()
			defer w.mu.Unlock()
			if ev.State != nil {
				w.states = append(w.states, *ev.State)
			}
			if ev.Online != nil {
				w.online = append(w.online, *ev.Online)
			}
		})
		if err != nil {
			t.Errorf("subscribe: %v", err)
		}
	}()
	return w
}

// until waits up to 20 s for ok on what was seen.
func (w *watch) until(t *testing.T, what string, ok func(states []report.State, online []bool) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		done := ok(w.states, w.online)
		w.mu.Unlock()
		if done {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Fatalf("no %s in 20 s: states %+v, online %v", what, w.states, w.online)
}

func options(m *servicetest.Mosquitto, password string, snap func() report.State, log *slog.Logger) Options {
	ca := ""
	if m.CAFile != "" {
		b, _ := os.ReadFile(m.CAFile)
		ca = string(b)
	}
	return Options{
		Report:      config.Report{Broker: m.URL(), CA: ca},
		Credentials: config.Credentials{User: "box-1", Password: password},
		Snapshot:    snap, Log: log, MaxPause: 200 * time.Millisecond, Timeout: 2 * time.Second,
	}
}

var cfg = config.Config{Channel: "stable", Board: "pi4", Image: "demo", Version: "1.0"}

// rolledBack is the state file of a device whose 1.1 failed its health
// check and rolled back to 1.0.
func rolledBack() state.State {
	return state.State{
		Format: state.Format, Committed: "a",
		Slots:       map[string]state.Release{"a": {Image: "demo", Version: "1.0", Serial: 3}},
		Failed:      map[string]state.Failure{"1.1": {Version: "1.1", Stage: "health", Check: "hello.service", Reason: "inactive (failed)", At: time.Now()}},
		LastInstall: &state.Transfer{Version: "1.1", Downloaded: 1000, Reused: 9000, Seconds: 4},
	}
}

// TestReportsRollback: the agent's report of a rollback arrives through
// a TLS broker with its failing check, retained, with the online flag.
func TestReportsRollback(t *testing.T) {
	m := broker(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	snap := func() report.State {
		return Snapshot(Device{Name: "box-1", Config: cfg, Booted: "a"}, rolledBack(), time.Now())
	}
	p, err := Start(ctx, options(m, "p1", snap, nil))
	if err != nil {
		t.Fatal(err)
	}
	p.Notify()
	w := follow(t, ctx, m)
	w.until(t, "rollback report", func(ss []report.State, on []bool) bool {
		for _, s := range ss {
			if l := s.Last; l != nil && l.Result == report.ResultRolledBack && l.Check == "hello.service" && l.Version == "1.1" && s.Version == "1.0" && l.BytesReused == 9000 {
				return len(on) > 0 && on[len(on)-1]
			}
		}
		return false
	})
}

// TestBrokerDownThenUp: the broker is down when the agent starts and the
// state changes twice meanwhile; when it comes up, the latest state
// arrives, and never blocked the caller.
func TestBrokerDownThenUp(t *testing.T) {
	m := broker(t, false)
	m.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var version atomic.Value
	version.Store("1.0")
	snap := func() report.State {
		c := cfg
		c.Version = version.Load().(string)
		return Snapshot(Device{Name: "box-1", Config: c}, state.State{}, time.Now())
	}
	p, err := Start(ctx, options(m, "p1", snap, nil))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, v := range []string{"1.1", "1.2"} {
		version.Store(v)
		for range 1000 {
			p.Notify()
		}
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("2000 notifications with the broker down took %s", d)
	}
	time.Sleep(time.Second)
	m.Start()
	w := follow(t, ctx, m)
	w.until(t, "the latest state", func(ss []report.State, _ []bool) bool {
		return len(ss) > 0 && ss[len(ss)-1].Version == "1.2"
	})
}

// countingLog counts the warnings logged.
func countingLog() (*slog.Logger, *bytes.Buffer, *sync.Mutex) {
	var buf bytes.Buffer
	var mu sync.Mutex
	return slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, nil)), &buf, &mu
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestWrongPassword: a refused password is logged once, however many
// times the publisher tries, and Notify never waits.
func TestWrongPassword(t *testing.T) {
	m := broker(t, false)
	log, buf, mu := countingLog()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, options(m, "wrong", func() report.State { return Snapshot(Device{Name: "box-1", Config: cfg}, state.State{}, time.Now()) }, log))
	if err != nil {
		t.Fatal(err)
	}
	assertNeverBlocks(t, p, 2*time.Second)
	cancel()
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(buf.String(), "cannot reach the broker"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, buf)
	}
	if !strings.Contains(buf.String(), "not Authorized") && !strings.Contains(buf.String(), "bad user name or password") {
		t.Errorf("the log does not say why:\n%s", buf)
	}
}

// assertNeverBlocks notifies for d and fails if one Notify takes more
// than 100 ms (a wait on the broker would take its timeout, 500 ms or more; less is the scheduler of a busy machine).
func assertNeverBlocks(t *testing.T, p *Publisher, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		s := time.Now()
		p.Notify()
		if e := time.Since(s); e > 100*time.Millisecond {
			t.Fatalf("Notify took %s", e)
		}
	}
}

// TestGarbageBroker: a "broker" that answers garbage, or nothing at all,
// is retried and logged; the caller is never blocked and nothing panics.
func TestGarbageBroker(t *testing.T) {
	for name, serve := range map[string]func(net.Conn){
		"garbage": func(c net.Conn) { c.Write(bytes.Repeat([]byte{0xff, 0x00, 0x20, 0x02}, 4096)); c.Close() },
		"silent":  func(c net.Conn) { time.Sleep(5 * time.Second); c.Close() },
		"refused": func(c net.Conn) { c.Write([]byte{0x20, 0x02, 0x00, 0x05}); c.Close() },
		"garbage after connack": func(c net.Conn) {
			c.Write(append([]byte{0x20, 0x02, 0x00, 0x00}, bytes.Repeat([]byte{0xf0, 0xff, 0xff, 0xff, 0xff}, 1000)...))
			time.Sleep(100 * time.Millisecond)
			c.Close()
		},
	} {
		t.Run(name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var conns atomic.Int32
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					conns.Add(1)
					go serve(c)
				}
			}()
			log, buf, mu := countingLog()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o := Options{Report: config.Report{Broker: "tcp://" + l.Addr().String()}, Credentials: config.Credentials{User: "box-1", Password: "p"},
				Snapshot: func() report.State { return report.State{} }, Log: log, MaxPause: 100 * time.Millisecond, Timeout: 500 * time.Millisecond}
			p, err := Start(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			assertNeverBlocks(t, p, 1500*time.Millisecond)
			if conns.Load() == 0 {
				t.Fatal("never connected")
			}
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(buf.String(), "cannot reach the broker") && !strings.Contains(buf.String(), "lost the broker") {
				t.Fatalf("nothing logged:\n%s", buf)
			}
			if n := strings.Count(buf.String(), "level=WARN"); n > 3 {
				t.Errorf("%d warnings, want each said once:\n%s", n, buf)
			}
		})
	}
}

func TestStartRefuses(t *testing.T) {
	good := Options{Report: config.Report{Broker: "tcp://127.0.0.1:1"}, Credentials: config.Credentials{User: "box-1", Password: "p"}}
	for name, mut := range map[string]func(*Options){
		"no broker":   func(o *Options) { o.Report.Broker = "" },
		"http":        func(o *Options) { o.Report.Broker = "http://x" },
		"no password": func(o *Options) { o.Credentials.Password = "" },
		"wildcard":    func(o *Options) { o.Credentials.User = "box+" },
		"bad ca":      func(o *Options) { o.Report.CA = "nope" },
		"short beat":  func(o *Options) { o.Report.Heartbeat = time.Second },
		"bad prefix":  func(o *Options) { o.Report.Prefix = "a/#" },
		"user in URL": func(o *Options) { o.Report.Broker = "tcp://u:p@h:1" },
	} {
		o := good
		mut(&o)
		if _, err := Start(context.Background(), o); err == nil {
			t.Errorf("%s: started", name)
		}
	}
}

// TestHeartbeat: an unchanged state is sent again at each heartbeat, and
// not between them however often Notify is called.
func TestHeartbeat(t *testing.T) {
	m := broker(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := follow(t, ctx, m)
	o := options(m, "p1", func() report.State { return Snapshot(Device{Name: "box-1", Config: cfg}, state.State{}, time.Now()) }, nil)
	o.Heartbeat = 500 * time.Millisecond
	p, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for time.Since(start) < 2600*time.Millisecond {
		p.Notify()
		time.Sleep(5 * time.Millisecond)
	}
	w.mu.Lock()
	n := len(w.states)
	w.mu.Unlock()
	// One at the connection (perhaps two: the state, then again with the
	// online flag) and one a heartbeat: 5 in 2.6 s, give or take.
	if n < 3 || n > 9 {
		t.Fatalf("%d reports in 2.6 s with a 500 ms heartbeat and Notify every 5 ms", n)
	}
}

// TestBrokerRestart: the broker goes away after the device reported, the
// state changes meanwhile; when the broker is back, the device sends the
// latest state and its online flag again by itself.
func TestBrokerRestart(t *testing.T) {
	m := broker(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var version atomic.Value
	version.Store("1.0")
	snap := func() report.State {
		c := cfg
		c.Version = version.Load().(string)
		return Snapshot(Device{Name: "box-1", Config: c}, state.State{}, time.Now())
	}
	p, err := Start(ctx, options(m, "p1", snap, nil))
	if err != nil {
		t.Fatal(err)
	}
	p.Notify()
	wctx, wcancel := context.WithCancel(ctx)
	w := follow(t, wctx, m)
	w.until(t, "the first state", func(ss []report.State, _ []bool) bool { return len(ss) > 0 && ss[len(ss)-1].Version == "1.0" })
	wcancel()
	m.Stop()
	version.Store("2.0")
	p.Notify() // while the broker is away: nothing waits, nothing is queued
	time.Sleep(500 * time.Millisecond)
	m.Start()
	w = follow(t, ctx, m)
	w.until(t, "the state after the restart", func(ss []report.State, on []bool) bool {
		return len(ss) > 0 && ss[len(ss)-1].Version == "2.0" && len(on) > 0 && on[len(on)-1]
	})
}
