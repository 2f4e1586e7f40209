package install

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

type memTarget struct {
	b      []byte
	synced bool
}

func (m *memTarget) WriteAt(p []byte, off int64) (int, error) { return copy(m.b[off:], p), nil }
func (m *memTarget) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m *memTarget) Size() int64 { return int64(len(m.b)) }
func (m *memTarget) Sync() error { m.synced = true; return nil }

func artifact(data []byte) channel.Artifact {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	return channel.Artifact{Name: "root", Path: channel.BlobPath(h), Size: int64(len(data)), SHA256: h, PartitionSize: int64(len(data))}
}

var opts = Options{Attempts: 3, Backoff: time.Millisecond, StallTimeout: 200 * time.Millisecond}

// server serves data with a misbehaviour on the first request.
func server(t *testing.T, data []byte, first func(w http.ResponseWriter, r *http.Request) bool) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 && first != nil && first(w, r) {
			return
		}
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
			w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(data)-1)+"/"+strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusPartialContent)
		}
		w.Write(data[start:])
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestWrite(t *testing.T) {
	data := bytes.Repeat([]byte("pibake root filesystem "), 40000) // ~900 KiB
	half := func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data[:len(data)/2])
		return true // the handler returns: the connection ends early
	}
	stall := func(w http.ResponseWriter, r *http.Request) bool {
		w.Write(data[:1000])
		w.(http.Flusher).Flush()
		time.Sleep(time.Second)
		return true
	}
	busy := func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return true
	}
	done := make(chan struct{})
	silent := func(w http.ResponseWriter, r *http.Request) bool {
		<-done // no headers, ever
		return true
	}
	defer close(done) // before the servers close: they wait for their handlers
	for name, first := range map[string]func(http.ResponseWriter, *http.Request) bool{
		"clean": nil, "truncated": half, "stalled": stall, "server error": busy, "stalled before its headers": silent,
	} {
		srv, reqs := server(t, data, first)
		dst := &memTarget{b: make([]byte, len(data)+4096)}
		start := time.Now()
		n, err := Write(context.Background(), HTTP{Base: srv.URL}, artifact(data), dst, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: took %s with a %s stall timeout", name, took, opts.StallTimeout)
		}
		if !bytes.Equal(dst.b[:len(data)], data) || !dst.synced {
			t.Errorf("%s: written bytes differ", name)
		}
		if n != int64(len(data)) {
			t.Errorf("%s: downloaded %d bytes for %d: a resume read bytes twice", name, n, len(data))
		}
		if name != "clean" && reqs.Load() < 2 {
			t.Errorf("%s: %d requests, want a retry", name, reqs.Load())
		}
	}
}

// TestLyingRanges: a server that answers a resume with bytes from another
// offset is caught by the Content-Range it sends, before a byte lands.
func TestLyingRanges(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 50000)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data[:len(data)/3])
			return
		}
		// Claims a range, sends the file from its start.
		w.Header().Set("Content-Range", "bytes 0-"+strconv.Itoa(len(data)-1)+"/"+strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data)
	}))
	defer srv.Close()
	dst := &memTarget{b: make([]byte, len(data))}
	_, err := Write(context.Background(), HTTP{Base: srv.URL}, artifact(data), dst, opts)
	if err == nil || !strings.Contains(err.Error(), "Content-Range") || errors.Is(err, ErrDigest) {
		t.Fatalf("lying range: %v", err)
	}
}

func TestRedirectPolicy(t *testing.T) {
	req := func(u string) *http.Request { r, _ := http.NewRequest("GET", u, nil); return r }
	if err := CheckRedirect(req("http://mirror/x"), []*http.Request{req("https://repo/x")}); !errors.Is(err, ErrRedirect) {
		t.Errorf("https to http: %v", err)
	}
	if err := CheckRedirect(req("https://cdn/x"), []*http.Request{req("https://repo/x")}); err != nil {
		t.Errorf("https to https: %v", err)
	}
	if err := CheckRedirect(req("http://b/x"), []*http.Request{req("http://a/x")}); err != nil {
		t.Errorf("http to http: %v", err)
	}
	five := []*http.Request{req("https://a"), req("https://a"), req("https://a"), req("https://a"), req("https://a")}
	if err := CheckRedirect(req("https://a"), five); !errors.Is(err, ErrRedirect) {
		t.Errorf("sixth redirect: %v", err)
	}
	// Through a real client: an https repository redirecting to http.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	}))
	defer tls.Close()
	c := tls.Client()
	c.CheckRedirect = CheckRedirect
	if _, err := (HTTP{Base: tls.URL, Client: c}).Open(context.Background(), channel.DocumentPath("stable"), 0); !errors.Is(err, ErrRedirect) {
		t.Errorf("https repository redirected to http: %v", err)
	}
}

func TestWriteRefusals(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 10000)
	srv, _ := server(t, data, nil)
	// Tampered: the repository's bytes are not the signed ones.
	a := artifact(bytes.Repeat([]byte("y"), 10000))
	a.Path = artifact(data).Path
	if _, err := Write(context.Background(), HTTP{Base: srv.URL}, a, &memTarget{b: make([]byte, 20000)}, opts); !errors.Is(err, ErrDigest) {
		t.Errorf("tampered: %v", err)
	}
	// Longer than signed.
	short := artifact(data[:5000])
	short.Path = artifact(data).Path
	if _, err := Write(context.Background(), HTTP{Base: srv.URL}, short, &memTarget{b: make([]byte, 20000)}, opts); !errors.Is(err, ErrDigest) {
		t.Errorf("oversized download: %v", err)
	}
	// Too large for the partition: refused before a byte is written.
	dst := &memTarget{b: make([]byte, 5000)}
	if _, err := Write(context.Background(), HTTP{Base: srv.URL}, artifact(data), dst, opts); !errors.Is(err, ErrTooLarge) || !bytes.Equal(dst.b, make([]byte, 5000)) {
		t.Errorf("too large: %v", err)
	}
	// Missing: not retried.
	missing := artifact([]byte("nothing here"))
	srv404 := httptest.NewServer(http.NotFoundHandler())
	defer srv404.Close()
	if _, err := Write(context.Background(), HTTP{Base: srv404.URL}, missing, &memTarget{b: make([]byte, 100)}, opts); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	// Always failing: gives up with the reason.
	srv500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) }))
	defer srv500.Close()
	if _, err := Write(context.Background(), HTTP{Base: srv500.URL}, artifact(data), &memTarget{b: make([]byte, 20000)}, opts); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("server down: %v", err)
	}
}

func TestDirSource(t *testing.T) {
	data := []byte("offline update from a USB stick")
	a := artifact(data)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, channel.BlobsDir), 0o755)
	os.WriteFile(filepath.Join(dir, a.Path), data, 0o644)
	dst := &memTarget{b: make([]byte, 100)}
	if _, err := Write(context.Background(), Dir{Path: dir}, a, dst, opts); err != nil || !bytes.Equal(dst.b[:len(data)], data) {
		t.Fatalf("dir: %v", err)
	}
}
