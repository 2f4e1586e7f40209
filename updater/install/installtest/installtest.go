// Package installtest holds the fakes the download tests share, kept out
// of the agent's production packages: a clock that moves only when told
// to, and a repository whose bytes arrive at a set rate on that clock
// (a slow link, a throttler on the path, a server that drip-feeds), so a
// download of hours runs in milliseconds.
package installtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pibake/pibake/updater/install"
)

// Clock is a fake clock; its zero value reads the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ErrCap is what a Throttle answers once its Cap is reached: not a
// network error, so a download stops on it rather than retrying.
var ErrCap = errors.New("installtest: the test's cap on connections or time is reached")

// Throttle serves Source's files on Clock: every Read returns at most
// Burst bytes and moves the clock by the time they take at Rate, plus
// Delay (a drip: one byte every 150 ms is Burst 1, Delay 150 ms). With
// PerConn > 0 a connection ends after that many bytes (one byte per
// connection). Only, if set, picks the files throttled; the others are
// served as Source serves them.
type Throttle struct {
	install.Source
	Clock   *Clock
	Rate    float64       // bytes per second; 0: no limit
	Burst   int           // bytes per Read; default 1 KiB
	Delay   time.Duration // added to the clock before each Read
	PerConn int64
	Only    func(path string) bool
	// OnRead, if set, is called after each throttled Read with the
	// bytes it returned; an error from it ends the connection with that
	// error (a test's watchdog stops the agent there).
	OnRead func(n int) error
	// MaxConns and MaxTime, when > 0, cap the test: the connection after
	// MaxConns, or a Read once the clock has moved MaxTime from the
	// first Open, fails with ErrCap.
	MaxConns int
	MaxTime  time.Duration

	mu      sync.Mutex
	conns   int
	sent    int64
	first   time.Time
	started bool
	paths   map[string]int
}

// Open implements install.Source.
func (t *Throttle) Open(ctx context.Context, path string, off int64) (io.ReadCloser, error) {
	if t.Only != nil && !t.Only(path) {
		return t.Source.Open(ctx, path, off)
	}
	if err := t.open(path); err != nil {
		return nil, err
	}
	r, err := t.Source.Open(ctx, path, off)
	if err != nil {
		return nil, err
	}
	return t.Wrap(r), nil
}

// open counts a request for path, or refuses it past MaxConns.
func (t *Throttle) open(path string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.paths == nil {
		t.paths = map[string]int{}
	}
	t.paths[path]++
	if t.MaxConns > 0 && t.conns >= t.MaxConns {
		return ErrCap
	}
	return nil
}

// Transport throttles the bodies of the answers rt gives: an HTTP
// repository read through it arrives at the throttle's pace, on the
// reader's side, whatever the socket buffers hold.
func (t *Throttle) Transport(rt http.RoundTripper) http.RoundTripper {
	return roundTrip(func(req *http.Request) (*http.Response, error) {
		path := strings.TrimPrefix(req.URL.Path, "/")
		if t.Only != nil && !t.Only(path) {
			return rt.RoundTrip(req)
		}
		if err := t.open(path); err != nil {
			return nil, err
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body = t.Wrap(resp.Body)
		return resp, nil
	})
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Wrap throttles a body read elsewhere (a range request's); it counts
// as a connection.
func (t *Throttle) Wrap(r io.ReadCloser) io.ReadCloser {
	t.mu.Lock()
	t.start()
	t.conns++
	t.mu.Unlock()
	return &slow{r: r, t: t}
}

// start notes when the first connection opened; t.mu is held.
func (t *Throttle) start() {
	if !t.started {
		t.first, t.started = t.Clock.Now(), true
	}
}

// Conns is how many connections were opened to throttled files.
func (t *Throttle) Conns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conns
}

// Opened is how many times path was opened.
func (t *Throttle) Opened(path string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.paths[path]
}

// Sent is how many bytes of throttled files were read.
func (t *Throttle) Sent() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent
}

type slow struct {
	r    io.ReadCloser
	t    *Throttle
	sent int64
}

func (s *slow) Read(p []byte) (int, error) {
	t := s.t
	if t.PerConn > 0 && s.sent >= t.PerConn {
		return 0, io.ErrUnexpectedEOF
	}
	if t.MaxTime > 0 && t.Clock.Now().Sub(t.first) > t.MaxTime {
		return 0, ErrCap
	}
	burst := t.Burst
	if burst <= 0 {
		burst = 1 << 10
	}
	if len(p) > burst {
		p = p[:burst]
	}
	if t.PerConn > 0 && int64(len(p)) > t.PerConn-s.sent {
		p = p[:t.PerConn-s.sent]
	}
	t.Clock.Advance(t.Delay)
	n, err := s.r.Read(p)
	if t.Rate > 0 {
		t.Clock.Advance(time.Duration(float64(n) / t.Rate * float64(time.Second)))
	}
	s.sent += int64(n)
	t.mu.Lock()
	t.sent += int64(n)
	t.mu.Unlock()
	if t.OnRead != nil {
		if werr := t.OnRead(n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (s *slow) Close() error { return s.r.Close() }
