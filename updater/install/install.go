// Package install streams release artifacts from a repository (HTTP, or a
// folder for offline updates) into the partitions of the inactive slot,
// hashing as it writes. Nothing is trusted until the whole artifact has
// the size and sha256 of the signed channel document, read back from the
// partition; an interrupted download resumes where it stopped (HTTP
// ranges, and across agent restarts from a saved checkpoint), a stalled
// one is cut and resumed, server errors are retried with backoff.
package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

// Errors callers branch on.
var (
	ErrDigest   = errors.New("artifact does not match the channel document")
	ErrTooLarge = errors.New("artifact is larger than its partition")
	ErrNotFound = errors.New("artifact not found in the repository")
)

// Source reads files of a repository, from an offset.
type Source interface {
	Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error)
	String() string
}

// HTTP reads a repository over HTTP(S).
type HTTP struct {
	Base   string
	Client *http.Client // default: NewClient()
	// Cache, if set, keeps the channels' files (channel.ChannelsDir):
	// they are asked for conditionally (conditional.go).
	Cache *Cache
}

func (h HTTP) String() string { return h.Base }

// Deadlines of NewClient's connections. The body's own deadline is the
// stall timeout of Write (no byte for that long cuts the connection).
const (
	DialTimeout   = 30 * time.Second
	HeaderTimeout = 60 * time.Second // request sent to response headers
)

// NewClient is the device's HTTP client: every step of a request has a
// deadline (dial, TLS, the wait for headers), at most 5 redirects, and
// none from https to http.
func NewClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   DialTimeout,
		ResponseHeaderTimeout: HeaderTimeout,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: t, CheckRedirect: CheckRedirect}
}

// ErrRedirect is a redirect the device does not follow.
var ErrRedirect = errors.New("redirect refused")

// CheckRedirect refuses a redirect from https to http (it would drop the
// transport's privacy for the rest of the download) and more than 5 hops.
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return fmt.Errorf("%w: more than 5 redirects, last to %s", ErrRedirect, req.URL.Redacted())
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: from %s to %s leaves https", ErrRedirect, via[0].URL.Redacted(), req.URL.Redacted())
	}
	return nil
}

var defaultClient = NewClient()

// Open implements Source; offset > 0 asks for a range.
func (h HTTP) Open(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	url := strings.TrimRight(h.Base, "/") + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	cache := h.Cache
	if offset > 0 || !strings.HasPrefix(path, channel.ChannelsDir+"/") {
		cache = nil // blobs never change; ranges are not kept
	}
	if cache != nil {
		cache.conditional(req, url)
	}
	c := h.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, &retryable{fmt.Errorf("GET %s: %w", url, err)}
	}
	if body, ok := cache.answer(url, resp); ok {
		return body, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		resp.Body.Close()
		return nil, &retryable{&BusyError{URL: url, Status: resp.Status, After: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}}
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %w", url, ErrNotFound)
	case offset > 0 && resp.StatusCode == http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != offset {
			resp.Body.Close()
			return nil, &retryable{fmt.Errorf("GET %s: asked for bytes from %d, the server sent Content-Range %q", url, offset, resp.Header.Get("Content-Range"))}
		}
		return resp.Body, nil
	case offset == 0 && resp.StatusCode == http.StatusOK:
		return resp.Body, nil
	case offset > 0 && resp.StatusCode == http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: the server ignores ranges; cannot resume", url)
	}
	resp.Body.Close()
	return nil, &retryable{fmt.Errorf("GET %s: HTTP %s", url, resp.Status)}
}

// rangeStart reads the first byte of "bytes START-END/TOTAL".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}

// Dir reads a repository from a folder (a USB stick, a copied bundle).
type Dir struct{ Path string }

func (d Dir) String() string { return d.Path }

// Open implements Source.
func (d Dir) Open(_ context.Context, path string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(d.Path, filepath.FromSlash(path)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

type retryable struct{ error }

func (r *retryable) Unwrap() error { return r.error }

// Target is a partition to write; it is read back to verify it.
type Target interface {
	io.WriterAt
	io.ReaderAt
	Size() int64
	Sync() error
}

// Options tune Write.
type Options struct {
	Attempts     int           // failed connections in a row (see Budget), default 5
	Backoff      time.Duration // first wait between attempts, doubled each time; default 1 s
	StallTimeout time.Duration // no byte for this long cuts the connection; default 30 s
	Log          *slog.Logger

	// Resume is how many bytes of the artifact an earlier, interrupted
	// Write already put in the partition (as its Progress reported them).
	Resume int64
	// Progress, if set, is called with the bytes written so far each time
	// Checkpoint more bytes are synced to the partition, so that a
	// restarted agent can Resume from there.
	Progress   func(written int64) error
	Checkpoint int64 // default 16 MiB
	// Pace, if set, is the artifact's pace, shared by every way it is
	// tried: it beats the service's watchdog while the download keeps
	// the slowest link's pace. Nil: one of this download's own, beating
	// Beat.
	Pace *Pace
	Beat func()
}

// defaults fills in the zero fields.
func (o *Options) defaults() {
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
}

// Write streams artifact a from src into dst and then verifies what the
// partition holds against the size and sha256 of the signed document, by
// reading it back: bytes from an earlier attempt (Resume) are checked like
// the new ones. It returns the bytes downloaded by this call. A stalled
// or broken connection is resumed where it stopped, within the budget of
// failed connections (Budget); the whole download keeps the slowest
// link's pace (Pace), or ends with ErrTooSlow.
func Write(ctx context.Context, src Source, a channel.Artifact, dst Target, o Options) (int64, error) {
	if a.Size > dst.Size() || a.PartitionSize > dst.Size() {
		return 0, fmt.Errorf("%s: %d bytes for a %d-byte partition (made for %d): %w", a.Name, a.Size, dst.Size(), a.PartitionSize, ErrTooLarge)
	}
	o.defaults()
	log := o.Log
	pace := o.Pace.For(a.Name, a.Size, o.Beat)
	off := o.Resume
	if off < 0 || off > a.Size {
		off = 0
	}
	if off > 0 {
		log.Info("resuming download", "artifact", a.Name, "offset", off, "size", a.Size)
	}
	start := off
	c := copier{src: src, a: a, dst: dst, stall: o.StallTimeout, pace: pace,
		cp: &checkpoint{dst: dst, every: o.Checkpoint, next: off + o.Checkpoint, progress: o.Progress}}
	budget := Budget{Attempts: o.Attempts, Size: a.Size}
	for off < a.Size {
		if err := pace.Check(); err != nil {
			return off - start, err
		}
		n, err := c.once(ctx, off)
		off += n
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrDigest) || errors.Is(err, ErrRedirect) || errors.Is(err, errWrite) ||
			errors.Is(err, ErrTooSlow) || ctx.Err() != nil {
			return off - start, err
		}
		retry, berr := budget.Failed(n, n, err)
		if !retry {
			return off - start, fmt.Errorf("%s: stopped at %d of %d bytes: %w", a.Name, off, a.Size, berr)
		}
		log.Warn("retrying download", "artifact", a.Name, "offset", off, "err", err)
		wait := budget.Backoff(o.Backoff)
		if after, ok := RetryAfter(err); ok {
			if after > MaxRetryInDownload {
				return off - start, fmt.Errorf("%s: stopped at %d of %d bytes: %w", a.Name, off, a.Size, err)
			}
			wait = max(wait, after) // the server said when: not sooner
		}
		if err := pace.Sleep(ctx, wait); err != nil {
			return off - start, err
		}
	}
	if err := dst.Sync(); err != nil {
		return off - start, fmt.Errorf("%s: sync: %w", a.Name, err)
	}
	return off - start, Verify(ctx, a, dst)
}

// Verify reads the artifact back from the partition and checks its sha256.
func Verify(ctx context.Context, a channel.Artifact, dst io.ReaderAt) error {
	h := sha256.New()
	r := io.NewSectionReader(dst, 0, a.Size)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: read back: %w", a.Name, err)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return fmt.Errorf("%s: the partition holds sha256 %s, the channel document says %s: %w", a.Name, got, a.SHA256, ErrDigest)
	}
	return nil
}

// errWrite marks a failure of the partition itself (a full or broken
// disk), which a retry of the download does not cure.
var errWrite = errors.New("partition write failed")

// checkpoint syncs the partition and reports progress every so many bytes.
type checkpoint struct {
	dst      Target
	every    int64
	next     int64
	progress func(int64) error
}

func (c *checkpoint) written(off int64) error {
	if c.progress == nil || off < c.next {
		return nil
	}
	if err := c.dst.Sync(); err != nil {
		return fmt.Errorf("sync: %w: %w", errWrite, err)
	}
	c.next = off + c.every
	return c.progress(off)
}

// copier is one artifact's download into its partition: each connection
// (once) appends to what the ones before it wrote.
type copier struct {
	src   Source
	a     channel.Artifact
	dst   Target
	cp    *checkpoint
	stall time.Duration // no byte for this long cuts the connection
	pace  *Pace
}

// once copies from one connection, from offset off of the artifact, until
// EOF, error or stall; it returns the bytes it wrote.
func (c copier) once(ctx context.Context, off int64) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The stall timer runs from the request on: a server that never
	// sends its headers is cut like one that stops in the body.
	timer := time.AfterFunc(c.stall, cancel)
	defer timer.Stop()
	var body io.ReadCloser
	err := c.pace.Timed(func() (err error) {
		body, err = c.src.Open(ctx, c.a.Path, off)
		return err
	})
	if err != nil {
		if body != nil {
			body.Close()
		}
		if ctx.Err() != nil && !timer.Stop() {
			return 0, &retryable{fmt.Errorf("%s: no response within %s: %w", c.a.Name, c.stall, err)}
		}
		return 0, err
	}
	defer body.Close()
	r := c.pace.Reader(&stallReader{r: body, t: timer, d: c.stall})
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			if off+n+int64(m) > c.a.Size {
				return n, fmt.Errorf("%s: more than the %d bytes the channel document gives: %w", c.a.Name, c.a.Size, ErrDigest)
			}
			if _, err := c.dst.WriteAt(buf[:m], off+n); err != nil {
				return n, fmt.Errorf("%s: %w: %w", c.a.Name, errWrite, err)
			}
			n += int64(m)
			if err := c.cp.written(off + n); err != nil {
				return n, fmt.Errorf("%s: %w", c.a.Name, err)
			}
		}
		if rerr == io.EOF {
			if off+n < c.a.Size {
				return n, &retryable{fmt.Errorf("%s: connection ended at %d of %d bytes", c.a.Name, off+n, c.a.Size)}
			}
			return n, nil
		}
		if errors.Is(rerr, ErrTooSlow) {
			return n, rerr
		}
		if rerr != nil {
			// A stall (our timer) or a broken connection: resume from here.
			return n, &retryable{fmt.Errorf("%s: read: %w", c.a.Name, rerr)}
		}
	}
}

// Partition is a block device (or file) partition opened for writing.
type Partition struct {
	F    *os.File
	Len  int64
	Base int64 // offset of the partition in F (0 for /dev/mmcblk0p3)
}

// WriteAt implements Target.
func (p Partition) WriteAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > p.Len {
		return 0, fmt.Errorf("write past the end of the partition: %w", ErrTooLarge)
	}
	return p.F.WriteAt(b, p.Base+off)
}

// ReadAt implements Target.
func (p Partition) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.Len {
		return 0, io.EOF
	}
	if rest := p.Len - off; int64(len(b)) > rest {
		n, err := p.F.ReadAt(b[:rest], p.Base+off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return p.F.ReadAt(b, p.Base+off)
}

// Size implements Target.
func (p Partition) Size() int64 { return p.Len }

// Sync implements Target.
func (p Partition) Sync() error { return p.F.Sync() }

// Close closes the device.
func (p Partition) Close() error { return p.F.Close() }
