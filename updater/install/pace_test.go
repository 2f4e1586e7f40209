package install_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/install/installtest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// blob puts data into a folder repository and returns its artifact.
func blob(t *testing.T, data []byte) (install.Dir, channel.Artifact) {
	t.Helper()
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	dir := t.TempDir()
	a := channel.Artifact{Name: "root", Path: channel.BlobPath(h), Size: int64(len(data)), SHA256: h, PartitionSize: int64(len(data))}
	os.MkdirAll(filepath.Join(dir, channel.BlobsDir), 0o755)
	if err := os.WriteFile(filepath.Join(dir, a.Path), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return install.Dir{Path: dir}, a
}

// zeros is a repository whose every file is endless zeros: the artifact
// of a drip-feeding server never ends, whatever its size.
type zeros struct{}

func (zeros) Open(context.Context, string, int64) (io.ReadCloser, error) {
	return io.NopCloser(zeroReader{}), nil
}
func (zeros) String() string { return "zeros" }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// discard is a partition of any size that keeps nothing.
type discard struct{ size int64 }

func (d discard) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
func (d discard) ReadAt(p []byte, _ int64) (int, error)  { clear(p); return len(p), nil }
func (d discard) Size() int64                            { return d.size }
func (d discard) Sync() error                            { return nil }

// TestDripOneBytePerConnection: a server that sends one byte and closes
// the connection, again and again, no longer resets the budget of
// connections each time: the download ends after a handful of them,
// with an error that says why.
func TestDripOneBytePerConnection(t *testing.T) {
	clk := installtest.NewClock(t0)
	src, a := blob(t, bytes.Repeat([]byte("pibake "), 10<<10))
	th := &installtest.Throttle{Source: src, Clock: clk, Burst: 1, PerConn: 1, MaxConns: 1000}
	o := install.Options{Attempts: 5, Backoff: time.Microsecond, StallTimeout: time.Second}
	_, err := install.Write(context.Background(), th, a, discard{a.Size}, o)
	if errors.Is(err, installtest.ErrCap) || th.Conns() > 5 {
		t.Fatalf("one byte per connection: %d connections, %v", th.Conns(), err)
	}
	if !errors.Is(err, install.ErrTooSlow) {
		t.Fatalf("one byte per connection: %v, want ErrTooSlow", err)
	}
	t.Logf("%d connections: %v", th.Conns(), err)
}

// TestDripOneBytePer150ms: a server that sends one byte every 150 ms (a
// 300 MB root would take 514 days) is cut within the grace of the
// slowest link the device is made for, with an error that says why.
func TestDripOneBytePer150ms(t *testing.T) {
	clk := installtest.NewClock(t0)
	a := channel.Artifact{Name: "root", Path: channel.BlobPath("x"), Size: 300 << 20, SHA256: "x", PartitionSize: 300 << 20}
	th := &installtest.Throttle{Source: zeros{}, Clock: clk, Burst: 1, Delay: 150 * time.Millisecond, MaxTime: time.Hour}
	o := install.Options{Attempts: 5, Backoff: time.Microsecond, StallTimeout: time.Second, Pace: &install.Pace{Now: clk.Now}}
	_, err := install.Write(context.Background(), th, a, discard{a.Size}, o)
	took := clk.Now().Sub(t0)
	if errors.Is(err, installtest.ErrCap) || took > install.Grace+time.Minute {
		t.Fatalf("one byte per 150 ms: still downloading after %s (%d bytes): %v", took, th.Sent(), err)
	}
	if !errors.Is(err, install.ErrTooSlow) {
		t.Fatalf("one byte per 150 ms: %v, want ErrTooSlow", err)
	}
	t.Logf("cut after %s and %d bytes: %v", took, th.Sent(), err)
}

// TestSlowLinkCompletes: an artifact on a link of exactly 64 kbit/s, or
// one that sends its bytes in bursts with pauses, arrives whole, and the
// watchdog is fed all along.
func TestSlowLinkCompletes(t *testing.T) {
	data := make([]byte, 96<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name  string
		rate  float64
		delay time.Duration
		burst int
	}{
		{"64 kbit/s", install.MinRate, 0, 1 << 10},
		{"bursts of 16 KiB every second", 0, time.Second, 16 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := installtest.NewClock(t0)
			src, a := blob(t, data)
			th := &installtest.Throttle{Source: src, Clock: clk, Rate: tc.rate, Burst: tc.burst, Delay: tc.delay, MaxTime: time.Hour}
			var last time.Time
			var gap time.Duration
			beat := func() {
				gap = max(gap, clk.Now().Sub(last))
				last = clk.Now()
			}
			last = clk.Now()
			dst := &memTarget{b: make([]byte, len(data))}
			o := install.Options{Attempts: 5, Backoff: time.Microsecond, StallTimeout: time.Second, Beat: beat, Pace: &install.Pace{Now: clk.Now}}
			if _, err := install.Write(context.Background(), th, a, dst, o); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dst.b, data) {
				t.Fatal("written bytes differ")
			}
			if gap > 5*time.Second {
				t.Errorf("the watchdog went %s without a beat", gap)
			}
			t.Logf("%d bytes in %s", len(data), clk.Now().Sub(t0))
		})
	}
}

type memTarget struct{ b []byte }

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
func (m *memTarget) Sync() error { return nil }
