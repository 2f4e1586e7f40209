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
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		"-5":                            0,
		"99999999999999999":             MaxRetryAfter,
		"86400":                         MaxRetryAfter,
		"Sun, 06 Dec 2026 12:10:00 GMT": 10 * time.Minute,
		"Sun, 06 Dec 2026 11:00:00 GMT": 0,
		"Mon, 07 Dec 2026 12:00:00 GMT": MaxRetryAfter,
		"soon":                          MaxRetryAfter,
	} {
		if got := parseRetryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", h, got, want)
		}
	}
}

func TestBusyAndConditional(t *testing.T) {
	const etag = `"v1"`
	var conditional, plain int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy":
			w.Header().Set("Retry-After", "90")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/channels/stable.json":
			if r.Header.Get("If-None-Match") == etag {
				conditional++
				w.WriteHeader(http.StatusNotModified)
				return
			}
			plain++
			w.Header().Set("ETag", etag)
			io.WriteString(w, "the document")
		}
	}))
	defer srv.Close()
	h := HTTP{Base: srv.URL, Cache: &Cache{}}
	_, err := h.Open(context.Background(), "busy", 0)
	if after, ok := RetryAfter(err); !ok || after != 90*time.Second || !errors.Is(err, ErrBusy) {
		t.Fatalf("429: %v (retry after %s)", err, after)
	}
	for i := range 3 {
		b, err := ReadFile(context.Background(), h, "channels/stable.json", 1<<10, Options{})
		if err != nil || string(b) != "the document" {
			t.Fatalf("read %d: %q %v", i, b, err)
		}
	}
	if plain != 1 || conditional != 2 {
		t.Errorf("%d full and %d conditional requests, want 1 and 2", plain, conditional)
	}
}

// A download told 503 with Retry-After waits that long before it asks
// again (not its own shorter backoff); one told to wait longer than
// MaxRetryInDownload stops, for the next poll to honour the wait.
func TestWriteHonoursRetryAfter(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 4096)
	sum := sha256.Sum256(data)
	art := channel.Artifact{Name: "root", Path: "blobs/sha256/x", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	var asked []time.Time
	after := "1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, time.Now())
		if len(asked) == 1 {
			w.Header().Set("Retry-After", after)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(data)
	}))
	defer srv.Close()
	dst := &memTarget{b: make([]byte, len(data))}
	if _, err := Write(context.Background(), HTTP{Base: srv.URL}, art, dst, Options{Backoff: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[1].Sub(asked[0]) < time.Second {
		t.Fatalf("%d requests, the second %s after the first (asked to wait 1s)", len(asked), asked[len(asked)-1].Sub(asked[0]))
	}
	asked, after = nil, "3600"
	_, err := Write(context.Background(), HTTP{Base: srv.URL}, art, dst, Options{Backoff: time.Millisecond})
	if d, ok := RetryAfter(err); !ok || d != time.Hour || len(asked) != 1 {
		t.Fatalf("told to wait an hour: %v after %d requests", err, len(asked))
	}
}
