package patch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

// countingReader counts the reads of an artifact.
type countingReader struct {
	r     io.ReaderAt
	reads atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads.Add(1)
	return c.r.ReadAt(p, off)
}

// TestEncodeStopsPastMaxSize: a patch larger than MaxSize is never used
// (publish sends the chunks instead), so the encoder stops as soon as what
// it has made passes MaxSize instead of encoding the rest: publish spent
// 73 s of a security kernel update encoding a 98 MB root patch it then
// threw away. The new artifact here is 24 runs of 256 KiB the old one
// lacks between copies of the old one (6 MiB of literal bytes), against a
// limit of 1 MiB (MaxSize's 32 MiB the same way, slower): the encoder must
// give up with ErrTooLarge before it has read every run.
func TestEncodeStopsPastMaxSize(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	old := random(1 << 20)
	const runs = 24
	var new []byte
	for range runs {
		new = append(new, random(256<<10)...)
		new = append(new, old...) // a copy between the runs
	}
	src := &countingReader{r: bytes.NewReader(new)}
	const limit = 1 << 20
	_, err := encode(context.Background(), bytes.NewReader(old), index(t, old), src, index(t, new), limit)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a patch of %d KiB of new bytes: %v, want ErrTooLarge", runs*256, err)
	}
	if n := src.reads.Load(); n >= runs {
		t.Errorf("the encoder read %d of the %d runs of new bytes before it gave up; want it to stop once past its limit (%d MiB)", n, runs, limit>>20)
	} else {
		t.Logf("gave up after reading %d of %d runs", n, runs)
	}
	// Under the limit nothing changes: the usual patch round-trips.
	o, n := releases()
	if _, err := Encode(context.Background(), bytes.NewReader(o), index(t, o), bytes.NewReader(n), index(t, n)); err != nil {
		t.Errorf("a small patch: %v", err)
	}
}
