package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
)

func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// pair is an old artifact and a new one made from it: a few edits, an
// insertion that shifts the rest, and a run of zeros that repeats.
func pair() (old, new []byte) {
	old = random(1, 6<<20)
	new = append([]byte{}, old[:1<<20]...)
	new = append(new, []byte("inserted: 41 bytes that shift everything")...)
	new = append(new, old[1<<20:3<<20]...)
	new = append(new, make([]byte, 1500<<10)...) // zeros: repeated chunks
	new = append(new, random(9, 300<<10)...)     // new data
	new = append(new, old[3<<20:]...)
	copy(new[5<<20:], "an edit in place")
	return old, new
}

func index(t testing.TB, b []byte) *chunks.Index {
	t.Helper()
	ix, err := chunks.Build(context.Background(), bytes.NewReader(b), chunks.Default)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// sink is a partition that fails the test on any byte that differs from
// the artifact: the check that nothing unverified is ever written.
type sink struct {
	t    testing.TB
	want []byte
	mu   sync.Mutex
	got  []byte
	n    int // writes
}

func newSink(t testing.TB, want []byte) *sink {
	return &sink{t: t, want: want, got: make([]byte, len(want)+1<<20)}
}

func (s *sink) WriteAt(b []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off+int64(len(b)) > int64(len(s.want)) || !bytes.Equal(b, s.want[off:off+int64(len(b))]) {
		s.t.Errorf("unverified bytes written at %d (%d bytes)", off, len(b))
	}
	s.n++
	return copy(s.got[off:], b), nil
}

func (s *sink) ReadAt(b []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copy(b, s.got[off:]), nil
}
func (s *sink) Size() int64 { return int64(len(s.got)) }
func (s *sink) Sync() error { return nil }

func artifact(b []byte) channel.Artifact {
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:])
	return channel.Artifact{Name: "root", Path: channel.BlobPath(h), Size: int64(len(b)), SHA256: h, PartitionSize: int64(len(b))}
}

// TestPlan: unchanged chunks are copied, the rest fetched; a gap policy
// trades bytes for requests; the zeros are fetched once.
func TestPlan(t *testing.T) {
	old, new := pair()
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	ix := index(t, new)
	exact := NewPlan(ix, src, Policy{})
	if exact.Copy+exact.Fetch != int64(len(new)) {
		t.Fatalf("copy %d + fetch %d != %d", exact.Copy, exact.Fetch, len(new))
	}
	if exact.Fetch > 1500<<10 {
		t.Errorf("fetches %d bytes, want little more than the 300 KiB of new data", exact.Fetch)
	}
	self := 0
	for _, op := range exact.Ops {
		if op.Source == Self {
			self++
		}
	}
	if self == 0 {
		t.Error("repeated zero chunks are not copied from the target")
	}
	wide := NewPlan(ix, src, Policy{Gap: 4 << 20})
	if wide.Requests > exact.Requests || wide.Fetch < exact.Fetch {
		t.Errorf("gap policy: %d requests %d bytes, exact: %d requests %d bytes", wide.Requests, wide.Fetch, exact.Requests, exact.Fetch)
	}
	small := NewPlan(ix, src, Policy{Gap: 4 << 20, MaxRange: 128 << 10})
	for _, op := range small.Ops {
		if op.Source == Fetch && op.Last > op.First && ix.Chunks[op.Last].End()-ix.Chunks[op.First].Offset > 128<<10 {
			t.Errorf("range of %d bytes above MaxRange", ix.Chunks[op.Last].End()-ix.Chunks[op.First].Offset)
		}
	}
	none := NewPlan(ix, nil, DefaultPolicy)
	if none.Fetch+none.Copy != int64(len(new)) || none.Copy > 2<<20 || none.Requests > 2 {
		t.Errorf("no sources: %d bytes in %d requests", none.Fetch, none.Requests)
	}
}

// TestApplyBitRot: a local chunk that changed after it was indexed is
// downloaded instead, and the artifact still verifies.
func TestApplyBitRot(t *testing.T) {
	old, new := pair()
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	rotten := append([]byte{}, old...)
	rotten[4<<20] ^= 1
	rotten[200<<10] ^= 0x80
	src[0].R = bytes.NewReader(rotten)
	srv := newServer(t, new)
	dst := newSink(t, new)
	plan, res, err := Write(context.Background(), artifact(new), Inputs{Index: index(t, new), Sources: src, Fetcher: srv.fetcher()}, dst, DefaultPolicy, fast)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rotten != 2 || res.Copied+res.Fetched != int64(len(new)) || res.Fetched <= plan.Fetch {
		t.Errorf("%+v, plan %+v", res, plan)
	}
}

// TestApplyResume: a second Apply from the offset Progress reported
// writes only the rest.
func TestApplyResume(t *testing.T) {
	old, new := pair()
	src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
	ix := index(t, new)
	srv := newServer(t, new)
	dst := newSink(t, new)
	stop := errors.New("power cut")
	var at int64
	o := fast
	o.Checkpoint = 1 << 20
	o.Progress = func(w int64) error { at = w; return stop }
	if _, err := Apply(context.Background(), NewPlan(ix, src, DefaultPolicy), Inputs{Index: ix, Sources: src, Fetcher: srv.fetcher()}, dst, o); !errors.Is(err, stop) {
		t.Fatalf("want the cut, got %v", err)
	}
	o.Progress, o.Resume = nil, at
	before := dst.n
	if _, _, err := Write(context.Background(), artifact(new), Inputs{Index: ix, Sources: src, Fetcher: srv.fetcher()}, dst, DefaultPolicy, o); err != nil {
		t.Fatal(err)
	}
	if at == 0 || dst.n-before >= len(ix.Chunks) {
		t.Errorf("resumed at %d with %d writes of %d chunks", at, dst.n-before, len(ix.Chunks))
	}
}

var fast = Options{Backoff: time.Millisecond, StallTimeout: 300 * time.Millisecond}
