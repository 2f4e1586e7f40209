package delta

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/install"
)

// Errors callers branch on. Any error of Apply means: fall back to the
// full artifact (install.Write); nothing unverified was written.
var (
	ErrChunk    = errors.New("chunk does not match the chunk index")
	ErrNoRanges = errors.New("server does not answer range requests")
	ErrRange    = errors.New("server answered another range than asked")
)

// Fetcher reads byte ranges of the new artifact: n bytes from off.
type Fetcher interface {
	Range(ctx context.Context, off, n int64) (io.ReadCloser, error)
	String() string
}

// Options tune Apply; the defaults are install.Write's.
type Options struct {
	Attempts     int           // failed requests in a row (install.Budget), default 5
	Backoff      time.Duration // first wait between attempts, doubled; default 1 s
	StallTimeout time.Duration // no byte for this long cuts the request; default 30 s
	Log          *slog.Logger
	// Resume skips the chunks that end at or before it: bytes an earlier,
	// interrupted Apply wrote, as Progress reported them. They are checked
	// by the caller's read-back like the rest.
	Resume     int64
	Progress   func(written int64) error
	Checkpoint int64 // default 16 MiB
	// Beat, if set, is called on every chunk written, and fed from the
	// pace while the ranges keep it.
	Beat func()
	// Pace, if set, is the artifact's pace (install.Pace), shared with
	// the other ways it is tried; nil: one of Apply's own. The time spent
	// copying local chunks is not counted against it.
	Pace *install.Pace
}

// Result is what Apply moved.
type Result struct {
	Copied   int64 // bytes reused from local sources (and the target)
	Fetched  int64 // bytes downloaded and written
	Requests int   // range requests, retries included
	Rotten   int   // local chunks that no longer matched and were downloaded
}

// Apply runs plan (made from in.Index and in.Sources): it writes every
// chunk of the target in.Index lists into dst, in order, each one only
// after its sha256 matched the index.
func Apply(ctx context.Context, plan *Plan, in Inputs, dst install.Target, o Options) (Result, error) {
	target := in.Index
	if target.Size > dst.Size() {
		return Result{}, fmt.Errorf("delta: %d bytes for a %d-byte partition: %w", target.Size, dst.Size(), install.ErrTooLarge)
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 30 * time.Second
	}
	if o.Checkpoint <= 0 {
		o.Checkpoint = 16 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := &applier{plan: plan, ix: target, src: in.Sources, f: in.Fetcher, dst: dst, o: o,
		buf: make([]byte, target.Params.Max), next: o.Resume + o.Checkpoint,
		pace: o.Pace.For(in.Fetcher.String(), target.Size, o.Beat), budget: install.Budget{Attempts: o.Attempts, Size: target.Size}}
	for _, op := range plan.Ops {
		if target.Chunks[op.Last].End() <= o.Resume {
			continue
		}
		var err error
		if op.Source == Fetch {
			err = a.fetch(ctx, op.First, op.Last)
		} else {
			err = a.copy(ctx, op)
		}
		if err != nil {
			return a.res, err
		}
	}
	if err := dst.Sync(); err != nil {
		return a.res, fmt.Errorf("delta: sync: %w", err)
	}
	return a.res, nil
}

type applier struct {
	plan *Plan
	ix   *chunks.Index
	src  []Source
	f    Fetcher
	dst  install.Target
	o    Options
	buf  []byte
	next int64 // next checkpoint
	res  Result

	pace   *install.Pace
	budget install.Budget // failed requests of the whole artifact
}

// write puts a verified chunk into the target.
func (a *applier) write(i int, b []byte) error {
	c := a.ix.Chunks[i]
	if sha256.Sum256(b) != c.SHA256 { // the one gate every byte passes
		return fmt.Errorf("chunk %d at %d: %w", i, c.Offset, ErrChunk)
	}
	if _, err := a.dst.WriteAt(b, c.Offset); err != nil {
		return fmt.Errorf("delta: write chunk %d at %d: %w", i, c.Offset, err)
	}
	if a.o.Beat != nil {
		a.o.Beat()
	}
	if a.o.Progress != nil && c.End() >= a.next {
		if err := a.dst.Sync(); err != nil {
			return fmt.Errorf("delta: sync: %w", err)
		}
		a.next = c.End() + a.o.Checkpoint
		return a.o.Progress(c.End())
	}
	return nil
}

// copy reuses a local chunk, or downloads it when its bytes changed.
func (a *applier) copy(ctx context.Context, op Op) error {
	c := a.ix.Chunks[op.First]
	b := a.buf[:c.Length]
	var r io.ReaderAt = a.dst
	name := "the target"
	if op.Source >= 0 {
		r, name = a.src[op.Source].R, a.src[op.Source].Name
	}
	_, err := r.ReadAt(b, op.From)
	if err == nil {
		if err = a.write(op.First, b); err == nil {
			a.res.Copied += int64(c.Length)
			return nil
		}
		if !errors.Is(err, ErrChunk) {
			return err
		}
	}
	a.o.Log.Warn("local chunk unusable, downloading it", "source", name, "offset", op.From, "chunk", op.First, "err", err)
	a.res.Rotten++
	return a.fetch(ctx, op.First, op.First)
}

// fetch downloads chunks first..last as one range, resuming at the first
// chunk not yet written after a failed request.
func (a *applier) fetch(ctx context.Context, first, last int) error {
	// A resumed Apply starts inside the range.
	for first < last && a.ix.Chunks[first].End() <= a.o.Resume {
		first++
	}
	for {
		if err := a.pace.Check(); err != nil {
			return fmt.Errorf("delta: %w", err)
		}
		a.res.Requests++
		done, got, received, err := a.fetchOnce(ctx, first, last)
		first += done
		if err == nil {
			a.budget.Got(got)
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			return err
		}
		retry, berr := a.budget.Failed(got, received, err)
		if !retry {
			return fmt.Errorf("delta: chunk %d from %s: %w", first, a.f, berr)
		}
		a.o.Log.Warn("retrying range", "from", a.f.String(), "chunk", first, "err", err)
		if err := a.pace.Sleep(ctx, a.budget.Backoff(a.o.Backoff)); err != nil {
			return err
		}
	}
}

// retryable: the next request may succeed. A server without ranges, an
// artifact that is not there or a failing partition will not get better.
func retryable(err error) bool {
	return !errors.Is(err, ErrNoRanges) && !errors.Is(err, install.ErrNotFound) && !errors.Is(err, errPartition) &&
		!errors.Is(err, install.ErrRedirect) && !errors.Is(err, install.ErrTooSlow)
}

var errPartition = errors.New("partition failed")

// fetchOnce makes one request for chunks first..last and writes the
// chunks that verify; it returns how many it wrote, their bytes, and the
// bytes it received.
func (a *applier) fetchOnce(ctx context.Context, first, last int) (done int, got, received int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stalled atomic.Bool
	timer := time.AfterFunc(a.o.StallTimeout, func() { stalled.Store(true); cancel() })
	defer timer.Stop()
	off := a.ix.Chunks[first].Offset
	n := a.ix.Chunks[last].End() - off
	var body io.ReadCloser
	err = a.pace.Timed(func() (err error) {
		body, err = a.f.Range(ctx, off, n)
		return err
	})
	if err != nil {
		if body != nil {
			body.Close()
		}
		if stalled.Load() {
			return 0, 0, 0, fmt.Errorf("delta: %s: no answer within %s: %w", a.f, a.o.StallTimeout, err)
		}
		return 0, 0, 0, err
	}
	defer body.Close()
	r := &counter{r: a.pace.Reader(install.StallReader(body, timer, a.o.StallTimeout))}
	for i := first; i <= last; i++ {
		b := a.buf[:a.ix.Chunks[i].Length]
		if _, err := io.ReadFull(r, b); err != nil {
			if stalled.Load() {
				err = fmt.Errorf("no byte for %s: %w", a.o.StallTimeout, err)
			}
			return i - first, got, r.n, fmt.Errorf("delta: %s: bytes %d-%d: chunk %d: %w", a.f, off, off+n-1, i, err)
		}
		if err := a.write(i, b); err != nil {
			if !errors.Is(err, ErrChunk) {
				err = fmt.Errorf("%w: %w", errPartition, err)
			}
			return i - first, got, r.n, fmt.Errorf("delta: %s: %w", a.f, err)
		}
		a.res.Fetched += int64(len(b))
		got += int64(len(b))
	}
	// Bytes after the range are never written; a server that sends them
	// is logged (the connection is not reused).
	if _, err := r.Read(a.buf[:1]); err != nil && !errors.Is(err, io.EOF) {
		a.o.Log.Warn("range answered with more bytes than asked", "from", a.f.String(), "err", err)
	}
	return last - first + 1, got, r.n, nil
}

// counter counts the bytes read through it.
type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
