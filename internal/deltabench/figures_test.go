// Package deltabench measures delta updates on real release artifacts:
// bytes and requests a device downloads for each change, with the
// project's chunker (updater/chunks), plan (updater/delta) and patches
// (updater/patch; a device takes the smaller of patch and chunks), next to
// restic's Rabin chunker, fixed 4 KiB blocks and xdelta3, all in one run.
// Figures, never assertions on time. Run with
//
//	PIBAKE_DELTA=DIR go test -run TestDeltaFigures -v ./internal/deltabench/
//
// where DIR holds one folder per release (v1, v2, …), each with the
// artifacts "boot" and "root" as publish stores them
// (scripts/delta-demo.sh builds and publishes the demo three times).
// The first release is the base; each other one is measured against it.
package deltabench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/restic/chunker"

	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/patch"
)

var artifacts = []string{"boot", "root"}

// blocks indexes b in fixed blocks of n bytes (RAUC's adaptive mode, 4 KiB).
func blocks(b []byte, n int) *chunks.Index {
	ix := &chunks.Index{Params: chunks.Params{Min: uint32(n), Avg: uint32(n), Max: uint32(n)}, Size: int64(len(b)), SHA256: sha256.Sum256(b)}
	for off := 0; off < len(b); off += n {
		end := min(off+n, len(b))
		ix.Chunks = append(ix.Chunks, chunks.Chunk{Offset: int64(off), Length: uint32(end - off), SHA256: sha256.Sum256(b[off:end])})
	}
	return ix
}

// rabin indexes b with restic's chunker at casync's bounds (average 2^16).
func rabin(t *testing.T, b []byte) *chunks.Index {
	c := chunker.NewWithBoundaries(bytes.NewReader(b), chunker.Pol(0x3DA3358B4DC173), 16<<10, 256<<10)
	c.SetAverageBits(16)
	ix := &chunks.Index{Params: chunks.Default, Size: int64(len(b)), SHA256: sha256.Sum256(b)}
	buf := make([]byte, 256<<10)
	for {
		ch, err := c.Next(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ix.Chunks = append(ix.Chunks, chunks.Chunk{Offset: int64(ch.Start), Length: uint32(ch.Length), SHA256: sha256.Sum256(ch.Data)})
	}
	return ix
}

func fastcdc(t *testing.T, b []byte) *chunks.Index {
	ix, err := chunks.Build(context.Background(), bytes.NewReader(b), chunks.Default)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func xdelta(t *testing.T, old, new string) int64 {
	if _, err := exec.LookPath("xdelta3"); err != nil {
		t.Log("xdelta3 not installed (apt-get install xdelta3): its column stays empty")
		return -1
	}
	out := filepath.Join(t.TempDir(), "patch")
	// -B: a source window as large as the root, or xdelta3 misses matches.
	cmd := exec.Command("xdelta3", "-e", "-9", "-f", "-B", "536870912", "-s", old, new, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xdelta3: %v: %s", err, b)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// sink is a partition in memory.
type sink struct{ b []byte }

func (s *sink) WriteAt(p []byte, off int64) (int, error) { return copy(s.b[off:], p), nil }
func (s *sink) ReadAt(p []byte, off int64) (int, error)  { return copy(p, s.b[off:]), nil }
func (s *sink) Size() int64                              { return int64(len(s.b)) }
func (s *sink) Sync() error                              { return nil }

// served runs the real applier against an HTTP server on loopback and
// returns the body bytes the server sent, its requests and connections.
func served(t *testing.T, new []byte, ix *chunks.Index, src []delta.Source, pol delta.Policy) (sent int64, reqs, conns int) {
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs++
		mu.Unlock()
		cw := &counting{ResponseWriter: w}
		http.ServeContent(cw, r, "a", time.Time{}, bytes.NewReader(new))
		mu.Lock()
		sent += cw.n
		mu.Unlock()
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	f := delta.HTTP{Base: srv.URL, Path: "a", Size: int64(len(new)), Client: install.NewClient()}
	dst := &sink{b: make([]byte, len(new))}
	plan := delta.NewPlan(ix, src, pol)
	if _, err := delta.Apply(context.Background(), plan, delta.Inputs{Index: ix, Sources: src, Fetcher: f}, dst, delta.Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.b, new) {
		t.Fatal("the applied artifact differs")
	}
	return sent, reqs, conns
}

type counting struct {
	http.ResponseWriter
	n int64
}

func (c *counting) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	return c.ResponseWriter.Write(b)
}

func TestDeltaFigures(t *testing.T) {
	dir := os.Getenv("PIBAKE_DELTA")
	if dir == "" {
		t.Skip("set PIBAKE_DELTA to a folder of releases (scripts/delta-demo.sh)")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rels []string
	for _, e := range ents {
		rels = append(rels, e.Name())
	}
	sort.Strings(rels)
	read := func(rel, a string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, rel, a))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	base := rels[0]
	// The device's local sources: both artifacts of the running release.
	type srcs struct{ cdc, rab, blk []delta.Source }
	var s srcs
	start := time.Now()
	for _, a := range artifacts {
		b := read(base, a)
		s.cdc = append(s.cdc, delta.Source{Name: a, R: bytes.NewReader(b), Index: fastcdc(t, b)})
	}
	fmt.Printf("indexing the base's local slots with FastCDC: %s (this machine)\n", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	for _, a := range artifacts {
		b := read(base, a)
		s.rab = append(s.rab, delta.Source{Name: a, R: bytes.NewReader(b), Index: rabin(t, b)})
	}
	fmt.Printf("indexing them with restic's Rabin chunker: %s\n", time.Since(start).Round(time.Millisecond))
	var blockIndex int64
	for _, a := range artifacts {
		b := read(base, a)
		s.blk = append(s.blk, delta.Source{Name: a, R: bytes.NewReader(b), Index: blocks(b, 4096)})
		blockIndex += int64(len(b)+4095) / 4096 * 32
	}
	fmt.Printf("a fixed 4 KiB block index (sha256 only) of one release: %d bytes\n", blockIndex)
	type total struct {
		served, chunked, blk, xd int64
		reqs, chunkReqs, blkReqs int
	}
	var totals []string
	for _, rel := range rels[1:] {
		var full int64
		var tot total
		fmt.Printf("\n%s -> %s\n", base, rel)
		fmt.Printf("%-5s %-28s %12s %9s %8s\n", "art", "method", "bytes", "requests", "of full")
		for _, a := range artifacts {
			new := read(rel, a)
			full += int64(len(new))
			pct := func(n int64) string { return fmt.Sprintf("%.3f%%", 100*float64(n)/float64(len(new))) }
			row := func(m string, n int64, reqs int) {
				fmt.Printf("%-5s %-28s %12d %9d %8s\n", a, m, n, reqs, pct(n))
			}
			ix := fastcdc(t, new)
			enc, _ := ix.MarshalBinary()
			row("fastcdc index file", int64(len(enc)), 1)
			for _, gap := range []int64{0, 16 << 10, 64 << 10, 256 << 10, 1 << 20} {
				p := delta.NewPlan(ix, s.cdc, delta.Policy{Gap: gap, MaxRange: 64 << 20})
				row(fmt.Sprintf("fastcdc gap %d KiB", gap>>10), p.Fetch, p.Requests)
			}
			p := delta.NewPlan(rabin(t, new), s.rab, delta.Policy{})
			row("restic rabin gap 0", p.Fetch, p.Requests)
			p = delta.NewPlan(rabin(t, new), s.rab, delta.DefaultPolicy)
			row("restic rabin gap 64 KiB", p.Fetch, p.Requests)
			p = delta.NewPlan(blocks(new, 4096), s.blk, delta.Policy{})
			row("fixed 4 KiB blocks gap 0", p.Fetch, p.Requests)
			p = delta.NewPlan(blocks(new, 4096), s.blk, delta.DefaultPolicy)
			row("fixed 4 KiB blocks gap 64 KiB", p.Fetch, p.Requests)
			tot.blk += p.Fetch + int64(len(new)+4095)/4096*32
			tot.blkReqs += p.Requests + 1
			xd := xdelta(t, filepath.Join(dir, base, a), filepath.Join(dir, rel, a))
			row("xdelta3 -9 patch", xd, 1)
			tot.xd += xd
			sent, reqs, conns := served(t, new, ix, s.cdc, delta.DefaultPolicy)
			row(fmt.Sprintf("chunks served (%d conn)", conns), sent+int64(len(enc)), reqs+1)
			tot.chunked += sent + int64(len(enc))
			tot.chunkReqs += reqs + 1
			// The patch from the base's artifact of the same name, as
			// publish makes it; a device takes it when it is smaller.
			old := read(base, a)
			start := time.Now()
			pt, err := patch.Encode(context.Background(), bytes.NewReader(old), fastcdc(t, old), bytes.NewReader(new), ix)
			if err != nil {
				t.Fatal(err)
			}
			pb, _ := pt.MarshalBinary()
			row(fmt.Sprintf("patch (encoded in %s)", time.Since(start).Round(10*time.Millisecond)), int64(len(pb)), 1)
			if int64(len(pb)) < sent+int64(len(enc)) {
				tot.served += int64(len(pb))
				tot.reqs++
			} else {
				tot.served += sent + int64(len(enc))
				tot.reqs += reqs + 1
			}
		}
		fmt.Printf("full release: %d bytes\n", full)
		pc := func(n int64) float64 { return 100 * float64(n) / float64(full) }
		line := fmt.Sprintf("%s -> %s: pibake %d bytes in %d requests (%.2f%% of %d; chunks alone %d in %d, %.2f%%); fixed 4 KiB blocks %d in %d (%.2f%%); xdelta3 %d (%.2f%%); pibake / xdelta3 = %.2f",
			base, rel, tot.served, tot.reqs, pc(tot.served), full, tot.chunked, tot.chunkReqs, pc(tot.chunked), tot.blk, tot.blkReqs, pc(tot.blk), tot.xd, pc(tot.xd), float64(tot.served)/float64(max(tot.xd, 1)))
		totals = append(totals, line)
	}
	// Both artifacts together, index files included (fixed blocks: a
	// 32-byte digest per block as their index).
	fmt.Println()
	for _, l := range totals {
		fmt.Println(l)
	}

}
