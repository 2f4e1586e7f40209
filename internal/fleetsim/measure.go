package fleetsim

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/updater/report"
)

// Traffic counts what a repository server answered: requests, bytes on
// the wire both ways (request and response lines, headers and bodies;
// no TCP or TLS overhead), and the answers 304 Not Modified.
type Traffic struct {
	Requests, NotModified, In, Out atomic.Int64
}

// Figures are a copy of the counters.
type Figures struct{ Requests, NotModified, In, Out int64 }

// Now reads the counters.
func (t *Traffic) Now() Figures {
	return Figures{t.Requests.Load(), t.NotModified.Load(), t.In.Load(), t.Out.Load()}
}

// Sub is the traffic between two readings.
func (f Figures) Sub(g Figures) Figures {
	return Figures{f.Requests - g.Requests, f.NotModified - g.NotModified, f.In - g.In, f.Out - g.Out}
}

// Serve runs srv (internal/reposerve's, as pibake serve makes it) on
// 127.0.0.1 with t counting, until ctx ends; it returns the server's
// base URL.
func Serve(ctx context.Context, srv *http.Server, t *Traffic) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	h := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Requests.Add(1)
		h.ServeHTTP(&statusWriter{ResponseWriter: w, t: t}, r)
	})
	go func() { _ = srv.Serve(countingListener{ln, t}) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	return "http://" + ln.Addr().String(), nil
}

type statusWriter struct {
	http.ResponseWriter
	t *Traffic
}

func (s *statusWriter) WriteHeader(code int) {
	if code == http.StatusNotModified {
		s.t.NotModified.Add(1)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type countingListener struct {
	net.Listener
	t *Traffic
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.t}, nil
}

type countingConn struct {
	net.Conn
	t *Traffic
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.t.In.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.t.Out.Add(int64(n))
	return n, err
}

// Observer follows the broker as the operator's tools do (fleet.Subscribe)
// and keeps every device's latest state and the messages it received.
type Observer struct {
	mu       sync.Mutex
	states   map[string]report.State
	messages int64
	bad      int64
}

// Observe subscribes to every device's topics until ctx ends.
func Observe(ctx context.Context, b fleet.Broker) (*Observer, error) {
	o := &Observer{states: map[string]report.State{}}
	ready := make(chan error, 1)
	go func() {
		ready <- fleet.Subscribe(ctx, b, func(ev fleet.Event) {
			o.mu.Lock()
			defer o.mu.Unlock()
			o.messages++
			switch {
			case ev.Err != nil:
				o.bad++
			case ev.State != nil:
				o.states[ev.Device] = *ev.State
			}
		})
	}()
	select {
	case err := <-ready:
		return nil, err
	case <-time.After(500 * time.Millisecond): // subscribed; Subscribe returns at ctx's end
	}
	return o, nil
}

// Messages is how many messages the observer received (states and
// online flags, the retained ones at its start included) and how many
// of them were malformed.
func (o *Observer) Messages() (all, malformed int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.messages, o.bad
}

// Missing are the devices whose latest state on the broker is not what
// the device reports now (its time aside).
func (o *Observer) Missing(devs []*Device) []string {
	var out []string
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range devs {
		got, ok := o.states[d.Name]
		if !ok || !sameReport(got, d.Report()) {
			out = append(out, d.Name)
		}
	}
	return out
}

func sameReport(a, b report.State) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// Settle waits until the broker holds every device's latest state, or
// until timeout; it returns the devices still missing.
func (o *Observer) Settle(devs []*Device, timeout time.Duration) []string {
	end := time.Now().Add(timeout)
	for {
		missing := o.Missing(devs)
		if len(missing) == 0 || time.Now().After(end) {
			return missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}
