package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
)

// server serves one artifact with ranges (http.ServeContent), unless a
// fault takes the request; it counts requests and body bytes.
type server struct {
	*httptest.Server
	data  []byte
	mu    sync.Mutex
	reqs  int
	sent  int64
	fault func(n int, w http.ResponseWriter, r *http.Request) bool
}

type countingWriter struct {
	http.ResponseWriter
	s *server
}

func (c countingWriter) Write(b []byte) (int, error) {
	c.s.mu.Lock()
	c.s.sent += int64(len(b))
	c.s.mu.Unlock()
	return c.ResponseWriter.Write(b)
}

func newServer(t testing.TB, data []byte) *server {
	s := &server{data: data}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs++
		n, fault := s.reqs, s.fault
		s.mu.Unlock()
		cw := countingWriter{w, s}
		if fault != nil && fault(n, cw, r) {
			return
		}
		http.ServeContent(cw, r, "artifact", time.Time{}, bytes.NewReader(s.data))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) fetcher() HTTP {
	return HTTP{Base: s.URL, Path: channel.BlobPath("x"), Size: int64(len(s.data))}
}

// rangeOf parses the single range a client asked for.
func rangeOf(r *http.Request) (off, n int64) {
	spec := strings.TrimPrefix(r.Header.Get("Range"), "bytes=")
	a, b, _ := strings.Cut(spec, "-")
	off, _ = strconv.ParseInt(a, 10, 64)
	end, _ := strconv.ParseInt(b, 10, 64)
	return off, end - off + 1
}

// Faults of a hostile or broken server. Each writes its own answer.
var faults = map[string]func(s *server) func(w http.ResponseWriter, r *http.Request){
	"wrong bytes": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			off, n := rangeOf(r)
			b := append([]byte{}, s.data[off:off+n]...)
			b[len(b)/2] ^= 1
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(s.data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(b)
		}
	},
	"short body": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			off, n := rangeOf(r)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(s.data)))
			w.Header().Set("Content-Length", fmt.Sprint(n))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(s.data[off : off+n/2])
		}
	},
	"wrong content-range": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			off, n := rangeOf(r)
			off++ // the bytes of the range it claims to send
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(s.data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(s.data[off : off+n])
		}
	},
	"wrong content-length": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			off, n := rangeOf(r)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(s.data)))
			w.Header().Set("Content-Length", fmt.Sprint(n+10))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(s.data[off : off+n])
			w.Write(make([]byte, 10))
		}
	},
	"stall": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			off, n := rangeOf(r)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(s.data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(s.data[off : off+n/3])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
	},
	"stall before headers": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	},
	"server error": func(s *server) func(w http.ResponseWriter, r *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) }
	},
}

func (w countingWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// TestHostileServer: each fault once is retried and the artifact ends
// complete and verified; each fault on every request ends in an error
// (the caller's cue to fall back to the full download); in both cases the
// partition never receives a byte that is not the artifact's.
func TestHostileServer(t *testing.T) {
	old, new := pair()
	ix := index(t, new)
	for name, fault := range faults {
		for _, always := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/always=%v", name, always), func(t *testing.T) {
				s := newServer(t, new)
				h := fault(s)
				s.fault = func(n int, w http.ResponseWriter, r *http.Request) bool {
					if always || n == 2 { // the second request: one was good
						h(w, r)
						return true
					}
					return false
				}
				src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
				dst := newSink(t, new)
				o := fast
				o.Attempts = 3
				_, res, err := Write(context.Background(), artifact(new), Inputs{Index: ix, Sources: src, Fetcher: s.fetcher()}, dst, Policy{}, o)
				if always {
					if err == nil {
						t.Fatal("a server that always fails was accepted")
					}
					t.Logf("refused: %v", err)
					return
				}
				if err != nil {
					t.Fatalf("one fault not retried: %v", err)
				}
				if res.Requests < 2 {
					t.Errorf("%d requests", res.Requests)
				}
			})
		}
	}
}

// TestIgnoresRange: a server that answers 200 with the whole file is
// refused at once (no retries): the device downloads the full artifact.
func TestIgnoresRange(t *testing.T) {
	old, new := pair()
	s := newServer(t, new)
	s.fault = func(_ int, w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusOK)
		w.Write(new)
		return true
	}
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	dst := newSink(t, new)
	_, res, err := Write(context.Background(), artifact(new), Inputs{Index: index(t, new), Sources: src, Fetcher: s.fetcher()}, dst, Policy{}, fast)
	if !errors.Is(err, ErrNoRanges) || res.Requests != 1 {
		t.Fatalf("%v after %d requests, want ErrNoRanges after 1", err, res.Requests)
	}
	if res.Fetched != 0 {
		t.Errorf("%d bytes of a 200 written", res.Fetched)
	}
}

// TestTooMuch: a chunked answer with bytes after the range: the range's
// chunks verify and are written, the rest is never read into the target.
func TestTooMuch(t *testing.T) {
	old, new := pair()
	s := newServer(t, new)
	s.fault = func(_ int, w http.ResponseWriter, r *http.Request) bool {
		off, n := rangeOf(r)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, len(new)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(new[off : off+n])
		w.(http.Flusher).Flush()
		w.Write(bytes.Repeat([]byte("junk"), 1000))
		return true
	}
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	if _, _, err := Write(context.Background(), artifact(new), Inputs{Index: index(t, new), Sources: src, Fetcher: s.fetcher()}, newSink(t, new), Policy{}, fast); err != nil {
		t.Fatal(err)
	}
}

// TestNotFound: no retries for a missing artifact.
func TestNotFound(t *testing.T) {
	old, new := pair()
	s := newServer(t, new)
	s.fault = func(_ int, w http.ResponseWriter, r *http.Request) bool { http.NotFound(w, r); return true }
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	_, res, err := Write(context.Background(), artifact(new), Inputs{Index: index(t, new), Sources: src, Fetcher: s.fetcher()}, newSink(t, new), Policy{}, fast)
	if !errors.Is(err, install.ErrNotFound) || res.Requests != 1 {
		t.Fatalf("%v after %d requests", err, res.Requests)
	}
}

// TestKeepAlive: the ranges of one update share one connection.
func TestKeepAlive(t *testing.T) {
	old, new := pair()
	s := newServer(t, new)
	conns := 0
	var mu sync.Mutex
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	f := s.fetcher()
	f.Client = install.NewClient()
	_, res, err := Write(context.Background(), artifact(new), Inputs{Index: index(t, new), Sources: src, Fetcher: f}, newSink(t, new), Policy{}, fast)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests < 3 || conns != 1 {
		t.Errorf("%d requests over %d connections", res.Requests, conns)
	}
}
