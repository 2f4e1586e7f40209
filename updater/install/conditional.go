package install

// Polite polling: a server that is busy says when to come back
// (Retry-After on 429 and 503, honoured within MaxRetryAfter), and the
// channel's documents are asked for conditionally (If-None-Match with the
// ETag, If-Modified-Since with the Last-Modified of the copy kept in a
// Cache), so an idle poll costs headers only. A kept copy is handed to
// the caller as if downloaded: the agent verifies its signature every
// time, as it does a fresh one.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxRetryAfter bounds the wait a server may ask for: a longer or
// malformed Retry-After is read as this long, so no server can silence a
// device for good.
const MaxRetryAfter = 6 * time.Hour

// MaxRetryInDownload is the longest Retry-After a download in progress
// waits for; a longer one ends it (resumed at the next poll, which
// honours the wait).
const MaxRetryInDownload = 2 * time.Minute

// ErrBusy is a server that answered 429 or 503.
var ErrBusy = errors.New("the server is busy")

// BusyError is a 429 or 503 answer and the wait it asked for (Retry-After,
// bounded; 0 when it gave none).
type BusyError struct {
	URL    string
	Status string
	After  time.Duration
}

func (e *BusyError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("GET %s: HTTP %s: %v, come back in %s", e.URL, e.Status, ErrBusy, e.After)
	}
	return fmt.Sprintf("GET %s: HTTP %s: %v", e.URL, e.Status, ErrBusy)
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// RetryAfter is the wait a busy server asked for somewhere in err's chain.
func RetryAfter(err error) (time.Duration, bool) {
	var b *BusyError
	if errors.As(err, &b) && b.After > 0 {
		return b.After, true
	}
	return 0, false
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (judged against now). Absent or in the past: 0; longer than
// MaxRetryAfter, or unreadable: MaxRetryAfter.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n < 0 {
			return 0
		}
		return min(time.Duration(min(n, int64(MaxRetryAfter/time.Second)))*time.Second, MaxRetryAfter)
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return MaxRetryAfter
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter)
}

// Cache keeps the last copy of each conditional file with its validators.
// Its zero value is ready; it is safe for concurrent use.
type Cache struct {
	mu    sync.Mutex
	files map[string]cached
}

type cached struct {
	etag, modified string
	body           []byte
}

// maxCached bounds a kept copy (the documents are far smaller).
const maxCached = 1 << 20

func (c *Cache) get(url string) (cached, bool) {
	if c == nil {
		return cached{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[url]
	return f, ok
}

func (c *Cache) put(url string, f cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.files == nil {
		c.files = map[string]cached{}
	}
	c.files[url] = f
}

// conditional adds the validators of the kept copy of url to req.
func (c *Cache) conditional(req *http.Request, url string) {
	if f, ok := c.get(url); ok {
		if f.etag != "" {
			req.Header.Set("If-None-Match", f.etag)
		}
		if f.modified != "" {
			req.Header.Set("If-Modified-Since", f.modified)
		}
	}
}

// answer turns resp into the file's body: the kept copy on 304, a body
// that keeps itself once read whole on 200 with a validator. ok is false
// for any other status.
func (c *Cache) answer(url string, resp *http.Response) (io.ReadCloser, bool) {
	if c == nil {
		return nil, false
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		f, ok := c.get(url)
		if !ok {
			return nil, false
		}
		resp.Body.Close()
		return io.NopCloser(bytes.NewReader(f.body)), true
	case http.StatusOK:
		f := cached{etag: resp.Header.Get("ETag"), modified: resp.Header.Get("Last-Modified")}
		if f.etag == "" && f.modified == "" {
			return nil, false
		}
		return &keeping{ReadCloser: resp.Body, c: c, url: url, f: f}, true
	}
	return nil, false
}

// keeping is a body that is kept in the cache once read to its end.
type keeping struct {
	io.ReadCloser
	c    *Cache
	url  string
	f    cached
	buf  bytes.Buffer
	over bool
}

func (k *keeping) Read(p []byte) (int, error) {
	n, err := k.ReadCloser.Read(p)
	if !k.over {
		if k.buf.Len()+n > maxCached {
			k.over, k.buf = true, bytes.Buffer{}
		} else {
			k.buf.Write(p[:n])
		}
	}
	if errors.Is(err, io.EOF) && !k.over {
		k.f.body = bytes.Clone(k.buf.Bytes())
		k.c.put(k.url, k.f)
	}
	return n, err
}
