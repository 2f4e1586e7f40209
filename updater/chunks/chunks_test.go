package chunks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"testing"
)

// data is reproducible pseudo-random bytes: seed s, n bytes.
func data(s uint64, n int) []byte {
	r := rand.New(rand.NewPCG(s, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func build(t testing.TB, b []byte, p Params) *Index {
	t.Helper()
	ix, err := Build(context.Background(), bytes.NewReader(b), p)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// TestBuild: chunks tile the input within the bounds, their digests are
// right, the average is near Avg, and the same bytes give the same file.
func TestBuild(t *testing.T) {
	b := data(1, 8<<20)
	ix := build(t, b, Default)
	if ix.Size != int64(len(b)) || ix.SHA256 != sha256.Sum256(b) {
		t.Fatalf("size %d sha %x", ix.Size, ix.SHA256)
	}
	for i, c := range ix.Chunks {
		if sha256.Sum256(b[c.Offset:c.End()]) != c.SHA256 {
			t.Fatalf("chunk %d digest", i)
		}
	}
	avg := len(b) / len(ix.Chunks)
	if avg < 40<<10 || avg > 100<<10 {
		t.Errorf("average chunk %d bytes over %d chunks, want about 64 KiB", avg, len(ix.Chunks))
	}
	f1, err := ix.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := build(t, b, Default).MarshalBinary()
	if !bytes.Equal(f1, f2) {
		t.Fatal("two builds of the same bytes differ")
	}
	back, err := Parse(f1)
	if err != nil {
		t.Fatal(err)
	}
	f3, _ := back.MarshalBinary()
	if !bytes.Equal(f1, f3) {
		t.Fatal("parse and marshal do not round-trip")
	}
}

// TestResync: an insertion early in the data changes only the chunks
// around it; every later chunk is found again.
func TestResync(t *testing.T) {
	b := data(2, 4<<20)
	ins := append(append(append([]byte{}, b[:100000]...), []byte("a 37-byte insertion, not a multiple.")...), b[100000:]...)
	old := map[[32]byte]bool{}
	for _, c := range build(t, b, Default).Chunks {
		old[c.SHA256] = true
	}
	var missing int64
	for _, c := range build(t, ins, Default).Chunks {
		if !old[c.SHA256] {
			missing += int64(c.Length)
		}
	}
	if missing > 3*256<<10 {
		t.Errorf("%d bytes of new chunks after a 37-byte insertion", missing)
	}
}

// TestSmall: empty and tiny inputs, a run of zeros (forced cuts at Max).
func TestSmall(t *testing.T) {
	if ix := build(t, nil, Default); len(ix.Chunks) != 0 || ix.Size != 0 {
		t.Fatalf("empty: %+v", ix)
	}
	if ix := build(t, []byte("x"), Default); len(ix.Chunks) != 1 || ix.Chunks[0].Length != 1 {
		t.Fatalf("one byte: %+v", ix)
	}
	ix := build(t, make([]byte, 1<<20+5), Default)
	if len(ix.Chunks) != 5 || ix.Chunks[4].Length != 5 {
		t.Fatalf("zeros: %d chunks", len(ix.Chunks))
	}
}

// TestParseRefuses: each rule of the format is enforced.
func TestParseRefuses(t *testing.T) {
	good, err := build(t, data(3, 1<<20), Default).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := map[string][]byte{
		"empty":       nil,
		"magic":       edit(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":     edit(func(b []byte) []byte { b[11] = 2; return b }),
		"algorithm":   edit(func(b []byte) []byte { b[15] = 9; return b }),
		"avg":         edit(func(b []byte) []byte { b[22] = 3; return b }),
		"size":        edit(func(b []byte) []byte { b[35]++; return b }),
		"count":       edit(func(b []byte) []byte { b[71]++; return b }),
		"trailing":    append(append([]byte{}, good...), 0),
		"truncated":   good[:len(good)-1],
		"offset":      edit(func(b []byte) []byte { b[headerSize+entrySize+7]++; return b }),
		"length":      edit(func(b []byte) []byte { b[headerSize+11]++; return b }),
		"huge length": edit(func(b []byte) []byte { b[headerSize+8] = 0xff; return b }),
	}
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
