package install

// The pace of a download: the one rule for how slow an update may arrive
// and how many connections it may spend, which every way of downloading
// follows (the whole artifact here, its chunks in updater/delta, a patch,
// a chunk index and the documents through ReadFile).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// MinRate is the slowest link a device is made to update over, 64 kbit/s,
// in bytes per second.
const MinRate = 8 << 10

// Grace is the time a download may spend beyond what MinRate needs for
// its bytes: connecting, the server's first answer, short outages.
const Grace = 2 * time.Minute

// Deadline is how long n bytes may take to arrive: Grace, plus n bytes at
// MinRate. A download keeps within it at every moment (see Pace), so a
// file of n bytes never takes longer.
func Deadline(n int64) time.Duration {
	return Grace + time.Duration(n)*time.Second/MinRate
}

// MeaningfulProgress is how many bytes the connections of a download
// must bring before its budget of failed connections starts over: 1 MiB,
// or a sixteenth of a smaller file. One byte per connection never resets
// it.
func MeaningfulProgress(size int64) int64 {
	return max(1, min(1<<20, size/16))
}

// ErrTooSlow is a download that fell behind the slowest link's pace, or
// whose connections failed again and again without bringing a meaningful
// amount: a drip-feeding server or a throttled link. It is not retried
// at once; the next poll starts again.
var ErrTooSlow = errors.New("download too slow")

// Reading is a download as its pace last saw it, for the service's
// status.
type Reading struct {
	Name    string    `json:"name"`           // the artifact
	Size    int64     `json:"size,omitempty"` // its size, if known
	Fetched int64     `json:"fetched"`        // bytes received since Since
	Since   time.Time `json:"since"`          // the download's start
	At      time.Time `json:"at"`             // when this was read
	// Waited is the time spent waiting on the network since Since (the
	// work on the partitions in between is not counted).
	Waited time.Duration `json:"waited"`
}

// Rate is the download's rate in bytes per second, over the time it
// waited on the network.
func (r Reading) Rate() float64 {
	if r.Waited <= 0 {
		return 0
	}
	return float64(r.Fetched) / r.Waited.Seconds()
}

// Pace keeps one download to the slowest link's pace: the time it has
// spent waiting on the network (answers, bytes, backoff between
// attempts; not the work on the partitions) may at any moment be at most
// Deadline of the bytes it has received. A download falls behind when a
// server drip-feeds it (one byte every 150 ms is cut after about Grace)
// and never at 64 kbit/s or faster; then every call returns ErrTooSlow.
// While it keeps the pace, each step beats the watchdog (Beat) and tells
// the service (Report): a download behind the pace feeds nothing.
//
// One Pace spans every way one artifact is tried (a patch, chunks, the
// whole of it), so together they keep the pace. It is not safe for
// concurrent use.
type Pace struct {
	Name   string
	Size   int64
	Now    func() time.Time // nil: time.Now
	Beat   func()
	Report func(Reading)

	started bool
	since   time.Time
	waited  time.Duration
	fetched int64
}

// For is p for a download of name (size bytes): p with its name and size
// filled in if they were not, or a new pace beating beat if p is nil.
func (p *Pace) For(name string, size int64, beat func()) *Pace {
	if p == nil {
		return &Pace{Name: name, Size: size, Beat: beat}
	}
	if p.Name == "" {
		p.Name, p.Size = name, size
	}
	return p
}

func (p *Pace) now() time.Time {
	var t time.Time
	if p.Now == nil {
		t = time.Now()
	} else {
		t = p.Now()
	}
	if !p.started {
		p.since, p.started = t, true
	}
	return t
}

// Reading is the download as the pace sees it now.
func (p *Pace) Reading() Reading {
	at := p.now()
	return Reading{Name: p.Name, Size: p.Size, Fetched: p.fetched, Since: p.since, At: at, Waited: p.waited}
}

// Check returns ErrTooSlow once the download has fallen behind; until
// then it beats the watchdog and reports.
func (p *Pace) Check() error {
	r := p.Reading()
	if p.waited > Deadline(p.fetched) {
		return fmt.Errorf("%s: %d bytes in %s of waiting on the network, less than the %d kbit/s an update needs (after a grace of %s): %w",
			p.Name, p.fetched, p.waited.Round(time.Second), MinRate*8>>10, Grace, ErrTooSlow)
	}
	if p.Beat != nil {
		p.Beat()
	}
	if p.Report != nil {
		p.Report(r)
	}
	return nil
}

// add counts n bytes received and the network time since start, then
// checks.
func (p *Pace) add(start time.Time, n int) error {
	p.waited += max(0, p.now().Sub(start))
	p.fetched += int64(n)
	return p.Check()
}

// Timed runs f, a wait on the network (a request until its answer),
// and counts its time; f's error comes first.
func (p *Pace) Timed(f func() error) error {
	start := p.now()
	err := f()
	if perr := p.add(start, 0); err == nil {
		err = perr
	}
	return err
}

// Sleep waits d between two attempts, as network time, or until ctx is
// done.
func (p *Pace) Sleep(ctx context.Context, d time.Duration) error {
	return p.Timed(func() error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// Reader reads r at the pace: the time each Read blocks and the bytes it
// returns are counted, and once the download is behind, Read returns
// ErrTooSlow (after the bytes it got, which the caller may keep).
func (p *Pace) Reader(r io.Reader) io.Reader { return &paced{r: r, p: p} }

type paced struct {
	r io.Reader
	p *Pace
}

func (pr *paced) Read(b []byte) (int, error) {
	start := pr.p.now()
	n, err := pr.r.Read(b)
	if perr := pr.p.add(start, n); perr != nil {
		return n, perr
	}
	return n, err
}

// Budget is a download's budget of failed connections: Attempts in a
// row, counted since the connections last brought MeaningfulProgress of
// Size. A connection that brings a byte and fails still counts.
type Budget struct {
	Attempts int
	Size     int64

	failed   int   // connections failed since the last reset
	since    int64 // the progress they made
	received int64 // the bytes they received
}

// Got counts the progress of a connection (n bytes written); true when
// it starts the budget over.
func (b *Budget) Got(n int64) bool {
	b.since += n
	if b.since < MeaningfulProgress(b.Size) {
		return false
	}
	b.failed, b.since, b.received = 0, 0, 0
	return true
}

// Failed counts a connection that failed with err after n bytes of
// progress (received bytes, of which it may have kept fewer), and says
// whether another may be tried: always when the progress since the last
// reset reaches MeaningfulProgress (the budget starts over), else while
// fewer than Attempts failed in a row. When the budget is spent it
// returns the download's error: err, or ErrTooSlow with err when the
// failed connections received bytes (too few to count).
func (b *Budget) Failed(n, received int64, err error) (retry bool, _ error) {
	if b.Got(n) {
		return true, nil
	}
	b.failed++
	b.received += received
	if b.failed < b.Attempts {
		return true, nil
	}
	if b.received > 0 {
		return false, fmt.Errorf("%d connections in a row brought %d bytes, less than the %d that count as progress: %w (the last: %w)",
			b.failed, b.received, MeaningfulProgress(b.Size), ErrTooSlow, err)
	}
	return false, err
}

// Backoff is the wait before the next attempt: first, doubled for each
// connection that failed since the last progress; none after progress.
func (b *Budget) Backoff(first time.Duration) time.Duration {
	if b.failed == 0 {
		return 0
	}
	return first << min(b.failed-1, 16)
}

// ReadFile reads a whole file of the repository (a document, a chunk
// index, a patch) in one connection: at most limit+1 bytes, one more
// than it may have, so the caller refuses a file that is too large. The
// connection is cut when no byte comes for o.StallTimeout, and the read
// keeps o.Pace (a pace of its own if nil), so it never takes longer
// than Deadline(limit) plus one stall.
func ReadFile(ctx context.Context, src Source, path string, limit int64, o Options) ([]byte, error) {
	o.defaults()
	p := o.Pace.For(path, limit, o.Beat)
	if err := p.Check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	stall := time.AfterFunc(o.StallTimeout, func() { stalled.Store(true); cancel() })
	defer stall.Stop()
	var body io.ReadCloser
	err := p.Timed(func() (err error) {
		body, err = src.Open(ctx, path, 0)
		return err
	})
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer body.Close()
	r := io.LimitReader(p.Reader(&stallReader{r: body, t: stall, d: o.StallTimeout}), limit+1)
	b, err := io.ReadAll(r)
	if err != nil {
		if stalled.Load() {
			err = fmt.Errorf("no byte for %s: %w", o.StallTimeout, err)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// StallReader reads r and restarts the stall timer t (to d) whenever bytes
// arrive: the timer fires only when r gives nothing for d. Every download
// path (whole artifacts here, ranges in delta) wraps its body in one.
func StallReader(r io.Reader, t *time.Timer, d time.Duration) io.Reader {
	return &stallReader{r: r, t: t, d: d}
}

type stallReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (s *stallReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if n > 0 {
		s.t.Reset(s.d)
	}
	return n, err
}
