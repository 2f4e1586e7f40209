package delta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/updater/install"
)

// HTTP fetches ranges of one artifact of a repository, one range per
// request, over the client's kept-alive connections.
type HTTP struct {
	Base   string       // the repository
	Path   string       // the artifact: its channel.BlobPath
	Size   int64        // the artifact's size, from the signed document
	Client *http.Client // default: install.NewClient()
}

var defaultClient = install.NewClient()

func (h HTTP) String() string { return strings.TrimRight(h.Base, "/") + "/" + h.Path }

// Range implements Fetcher. It accepts only a 206 whose Content-Range is
// exactly the range asked for (of an artifact of Size bytes) and whose
// length, if given, is n; the body it returns ends after n bytes and
// reports a server that sends more.
func (h HTTP) Range(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	url := h.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf("bytes %d-%d/", off, off+n-1)
	req.Header.Set("Range", "bytes="+strings.TrimSuffix(want[len("bytes "):], "/"))
	c := h.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s (range %d+%d): %w", url, off, n, err)
	}
	fail := func(err error) (io.ReadCloser, error) {
		resp.Body.Close()
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return fail(fmt.Errorf("GET %s: HTTP 200 to a range request: %w; the device downloads the whole artifact instead (configure the server or CDN to answer Range)", url, ErrNoRanges))
	case http.StatusNotFound:
		return fail(fmt.Errorf("GET %s: %w", url, install.ErrNotFound))
	default:
		return fail(fmt.Errorf("GET %s (range %d+%d): HTTP %s", url, off, n, resp.Status))
	}
	cr := resp.Header.Get("Content-Range")
	if cr != want+fmt.Sprint(h.Size) && cr != want+"*" {
		return fail(fmt.Errorf("GET %s: asked for %s%d, the server sent Content-Range %q: %w", url, want, h.Size, cr, ErrRange))
	}
	if resp.ContentLength >= 0 && resp.ContentLength != n {
		return fail(fmt.Errorf("GET %s: asked for %d bytes, Content-Length is %d: %w", url, n, resp.ContentLength, ErrRange))
	}
	return &exact{r: resp.Body, left: n, url: url}, nil
}

// exact reads n bytes of a body and makes anything after them an error.
type exact struct {
	r    io.ReadCloser
	left int64
	url  string
}

func (e *exact) Read(b []byte) (int, error) {
	if e.left == 0 {
		var one [1]byte
		if m, _ := e.r.Read(one[:]); m > 0 {
			return 0, fmt.Errorf("GET %s: the server sends more than the range: %w", e.url, ErrRange)
		}
		return 0, io.EOF
	}
	if int64(len(b)) > e.left {
		b = b[:e.left]
	}
	n, err := e.r.Read(b)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (e *exact) Close() error { return e.r.Close() }

// File fetches ranges of an artifact in a folder (a repository copied to
// a USB stick): no requests, the same checks on every chunk.
type File struct{ Path string }

func (f File) String() string { return f.Path }

// Range implements Fetcher.
func (f File) Range(_ context.Context, off, n int64) (io.ReadCloser, error) {
	fh, err := os.Open(filepath.FromSlash(f.Path))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", f.Path, install.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(fh, off, n), fh}, nil
}
