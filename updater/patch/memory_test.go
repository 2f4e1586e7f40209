package patch

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
)

// hostile is a MaxSize patch of 3-byte copies: about 11 million one-byte
// copies from a 128-byte source, the most ops a patch can hold.
func hostile() (b, src []byte, ops int) {
	ops = (MaxSize - headerSize) / 3
	b = make([]byte, headerSize, MaxSize)
	copy(b, Magic)
	binary.BigEndian.PutUint64(b[8:], 128)
	binary.BigEndian.PutUint64(b[48:], uint64(ops))
	for i := range ops {
		b = append(b, opCopy, byte(i%127), 1)
	}
	src = make([]byte, 128)
	for i := range src {
		src[i] = byte(i * 3)
	}
	return b, src, ops
}

// TestHostileOpsMemory: parsing and applying the patch with the most ops
// allocates a bounded amount (the 1 MiB copy buffer and a few small
// values), not memory per op: a device has 512 MB to 1 GB.
func TestHostileOpsMemory(t *testing.T) {
	b, src, ops := hostile()
	dst := &mem{b: make([]byte, ops)}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(p, bytes.NewReader(src), dst, nil); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2<<20 {
		t.Errorf("parsing and applying a %d-byte patch of %d ops allocated %d MB (heap in use %d MB, was %d MB)",
			len(b), ops, grew>>20, after.HeapInuse>>20, before.HeapInuse>>20)
	}
	for i, c := range dst.b {
		if c != src[i%127] {
			t.Fatalf("byte %d is %#x, want %#x", i, c, src[i%127])
		}
	}
	n := 0
	for range p.Ops {
		n++
	}
	if n != ops {
		t.Errorf("Ops yields %d ops, want %d", n, ops)
	}
}
