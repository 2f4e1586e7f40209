package patch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
)

// mem is a Target in memory that counts syncs.
type mem struct {
	b     []byte
	syncs int
}

func (m *mem) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(m.b)) {
		return 0, errors.New("write past the end")
	}
	return copy(m.b[off:], p), nil
}
func (m *mem) Size() int64 { return int64(len(m.b)) }
func (m *mem) Sync() error { m.syncs++; return nil }

// opsOf collects the ops of p.
func opsOf(p *Patch) []Op {
	var ops []Op
	for _, op := range p.Ops {
		ops = append(ops, op)
	}
	return ops
}

func index(t *testing.T, b []byte) *chunks.Index {
	t.Helper()
	ix, err := chunks.Build(context.Background(), bytes.NewReader(b), chunks.Default)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// releases makes an old artifact and a new one with the kinds of change
// a release brings: a stretch rewritten inside a chunk, bytes inserted
// (everything after moves), a table at the end with a few bytes changed
// in each of its entries.
func releases() (old, new []byte) {
	r := rand.New(rand.NewPCG(1, 2))
	old = make([]byte, 4<<20)
	for i := range old {
		old[i] = byte(r.Uint32())
	}
	new = bytes.Clone(old[:1<<20])
	new = append(new, bytes.Repeat([]byte("changed!"), 512)...)      // 4 KiB rewritten...
	new = append(new, old[1<<20+4096:2<<20]...)                      // ...in place
	new = append(new, []byte("inserted: all that follows moves")...) // 32 bytes inserted
	new = append(new, old[2<<20:3<<20]...)
	for i := 3 << 20; i < 4<<20; i += 256 { // table entries, one field each changed
		e := bytes.Clone(old[i : i+256])
		e[7]++
		new = append(new, e...)
	}
	return old, new
}

func TestRoundTrip(t *testing.T) {
	old, new := releases()
	p, err := Encode(context.Background(), bytes.NewReader(old), index(t, old), bytes.NewReader(new), index(t, new))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The changes are 4 KiB + 32 bytes + one byte in every 256 of the
	// last MiB (4096 of them, each a literal byte and a copy of a few
	// bytes of ops): far below the 1.9 MiB the chunks around them cover.
	t.Logf("patch: %d bytes, %d ops, for %d changed bytes", len(b), len(opsOf(p)), 4096+32+4096)
	if len(b) > 120<<10 {
		t.Errorf("patch of %d bytes for about 8 KiB of changes", len(b))
	}
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.SourceSHA256 != sha256.Sum256(old) || q.TargetSHA256 != sha256.Sum256(new) || q.TargetSize != int64(len(new)) {
		t.Fatal("header does not name the two artifacts")
	}
	dst := &mem{b: make([]byte, len(new)+4096)}
	if err := Apply(q, bytes.NewReader(old), dst, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.b[:len(new)], new) || dst.syncs != 1 {
		t.Fatalf("applied patch differs from the new artifact (synced %d times)", dst.syncs)
	}
	// The same artifact: one copy.
	p, err = Encode(context.Background(), bytes.NewReader(old), index(t, old), bytes.NewReader(old), index(t, old))
	if ops := opsOf(p); err != nil || len(ops) != 1 || ops[0].Data != nil {
		t.Fatalf("patch of an artifact to itself: %+v, %v", ops, err)
	}
	// Another source gives other bytes (which the device's read-back
	// refuses): a patch does not make its source right.
	other := bytes.Clone(old)
	other[100]++
	if err := Apply(q, bytes.NewReader(other), dst, nil); err != nil || bytes.Equal(dst.b[:len(new)], new) {
		t.Fatalf("patch applied to another source gave the new artifact (%v)", err)
	}
	if err := Apply(q, bytes.NewReader(old), &mem{b: make([]byte, len(new)-1)}, nil); err == nil {
		t.Fatal("patch applied to a partition too small for it")
	}
}

func TestParseRefuses(t *testing.T) {
	old, new := releases()
	p, err := Encode(context.Background(), bytes.NewReader(old), index(t, old), bytes.NewReader(new), index(t, new))
	if err != nil {
		t.Fatal(err)
	}
	good, _ := p.MarshalBinary()
	cases := map[string][]byte{
		"empty":          nil,
		"header only":    good[:headerSize],
		"truncated":      good[:len(good)-1],
		"trailing bytes": append(bytes.Clone(good), 0),
		"bad magic":      append([]byte("PBPATCH2"), good[8:]...),
		"unknown op":     append(bytes.Clone(good[:headerSize]), 'X', 1, 0),
	}
	// A copy from past the source's end.
	past := &Patch{SourceSize: 10, TargetSize: 5}
	past.appendOp(Op{Off: 8, Len: 5})
	if _, err := past.MarshalBinary(); err == nil {
		t.Error("marshalled a copy outside the source")
	}
	hdr := bytes.Clone(good[:headerSize])
	cases["copy past the source"] = append(hdr, 'C', 0xff, 0xff, 0xff, 0xff, 0x0f, 1)
	zero := bytes.Clone(good[:headerSize])
	cases["zero-length add"] = append(zero, 'A', 0)
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if MaxSize != channel.MaxPatchSize {
		t.Errorf("patch.MaxSize %d, channel.MaxPatchSize %d: one bound, two copies", MaxSize, channel.MaxPatchSize)
	}
}

func FuzzParse(f *testing.F) {
	old, new := releases()
	ix := func(b []byte) *chunks.Index {
		x, _ := chunks.Build(context.Background(), bytes.NewReader(b), chunks.Default)
		return x
	}
	p, _ := Encode(context.Background(), bytes.NewReader(old[:1<<20]), ix(old[:1<<20]), bytes.NewReader(new[:1<<20+8192]), ix(new[:1<<20+8192]))
	good, _ := p.MarshalBinary()
	f.Add(good)
	f.Add(good[:headerSize+3])
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		// What parses marshals back to the same bytes and applies
		// within its sizes.
		again, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("parsed patch does not marshal back: %v", err)
		}
		if p.TargetSize <= 1<<20 && p.SourceSize <= 1<<20 {
			if err := Apply(p, bytes.NewReader(make([]byte, p.SourceSize)), &mem{b: make([]byte, p.TargetSize)}, nil); err != nil {
				t.Fatalf("parsed patch does not apply: %v", err)
			}
		}
	})
}
