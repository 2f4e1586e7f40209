package patch

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/pibake/pibake/updater/chunks"
)

// Encoding, in two passes (publish runs it; a device never does):
//
//  1. The chunk indexes find the chunks of the new artifact that the old
//     one holds: each becomes a copy. That covers all but the changed
//     regions at the cost of reading neither artifact.
//  2. Each run of new chunks the old artifact lacks is compared with the
//     old bytes between the copies around it (the same place in the old
//     artifact, widened by Margin on each side): every MinMatch-byte
//     window of that old region is hashed, and the new bytes are scanned
//     for windows that match, each match extended both ways byte by byte.
//     What matches becomes copies, the rest literal bytes. This finds what
//     chunking misses inside a changed chunk: the unchanged stretches of a
//     compressed block or of a table whose entries moved a little.
const (
	// MinMatch is the shortest copy pass 2 makes: a copy costs up to 20
	// bytes of ops, and shorter matches in compressed data are chance.
	MinMatch = 32
	// Margin widens the old region on each side.
	Margin = 256 << 10
	// MaxRegion bounds the old region hashed for one changed run; a
	// larger one keeps its first MaxRegion bytes (from the copy before
	// the run, less Margin).
	MaxRegion = 4 << 20
)

// Encode makes the patch that turns old (the artifact oldIx describes)
// into new (newIx). It reads only the changed regions of both. A patch
// that would pass MaxSize is ErrTooLarge as soon as what it has made so
// far passes it: no device reads such a patch, and the rest would be
// encoded for nothing (a changed kernel's modules make a root patch of
// about 100 MB: over a minute of publish's time).
func Encode(ctx context.Context, old io.ReaderAt, oldIx *chunks.Index, new io.ReaderAt, newIx *chunks.Index) (*Patch, error) {
	return encode(ctx, old, oldIx, new, newIx, MaxSize)
}

// encode is Encode with the limit on the patch's size.
func encode(ctx context.Context, old io.ReaderAt, oldIx *chunks.Index, new io.ReaderAt, newIx *chunks.Index, limit int) (*Patch, error) {
	p := &Patch{SourceSize: oldIx.Size, SourceSHA256: oldIx.SHA256, TargetSize: newIx.Size, TargetSHA256: newIx.SHA256}
	have := map[[32]byte]int64{}
	for _, c := range oldIx.Chunks {
		if _, ok := have[c.SHA256]; !ok {
			have[c.SHA256] = c.Offset
		}
	}
	e := &encoder{p: p, old: old, new: new, limit: limit}
	var prevEnd int64 // end in old of the last copy
	for i := 0; i < len(newIx.Chunks); {
		c := newIx.Chunks[i]
		if off, ok := have[c.SHA256]; ok {
			e.copy(off, int64(c.Length))
			prevEnd = off + int64(c.Length)
			i++
			continue
		}
		j := i
		for j < len(newIx.Chunks) {
			if _, ok := have[newIx.Chunks[j].SHA256]; ok {
				break
			}
			j++
		}
		start, end := c.Offset, newIx.Chunks[j-1].End()
		// The old region: from the last copy's end to the next copy's
		// start, widened; without a next copy, as long as the run.
		lo, hi := prevEnd, prevEnd+(end-start)
		if j < len(newIx.Chunks) {
			if next := have[newIx.Chunks[j].SHA256]; next >= prevEnd {
				hi = next
			}
		}
		lo, hi = max(lo-Margin, 0), min(hi+Margin, oldIx.Size)
		if hi-lo > MaxRegion {
			hi = lo + MaxRegion
		}
		if err := e.region(ctx, lo, hi, start, end); err != nil {
			return nil, err
		}
		i = j
	}
	e.flush()
	if e.over() {
		return nil, fmt.Errorf("patch: %w (%d MiB)", ErrTooLarge, e.limit>>20)
	}
	if err := p.walk(nil); err != nil {
		return nil, fmt.Errorf("patch: encoder made a bad patch: %w", err)
	}
	return p, nil
}

type encoder struct {
	p        *Patch
	old, new io.ReaderAt // the two artifacts
	cp       Op          // a copy not yet emitted, which the next may extend (Len 0: none)
	lit      []byte      // literal bytes not yet emitted, after cp
	limit    int         // the patch's largest size
}

// over says whether the patch made so far (header, ops, pending literal
// bytes) passes the limit: it only grows from here.
func (e *encoder) over() bool { return headerSize+len(e.p.ops)+len(e.lit) > e.limit }

// flush emits the pending copy and literal bytes.
func (e *encoder) flush() {
	if e.cp.Len > 0 {
		e.p.appendOp(e.cp)
		e.cp = Op{}
	}
	if len(e.lit) > 0 {
		e.p.appendOp(Op{Len: int64(len(e.lit)), Data: e.lit})
		e.lit = e.lit[:0]
	}
}

// copy adds a copy of n bytes of old from off, joined to the pending copy
// when it continues it with no literal bytes between.
func (e *encoder) copy(off, n int64) {
	if len(e.lit) == 0 && e.cp.Len > 0 && e.cp.Off+e.cp.Len == off {
		e.cp.Len += n
		return
	}
	e.flush()
	e.cp = Op{Off: off, Len: n}
}

// window hashes the MinMatch bytes at b[0:]: four 8-byte words mixed.
func window(b []byte) uint64 {
	le := binary.LittleEndian
	h := le.Uint64(b) * 0x9e3779b97f4a7c15
	h ^= le.Uint64(b[8:]) * 0xc2b2ae3d27d4eb4f
	h ^= le.Uint64(b[16:]) * 0x165667b19e3779f9
	h ^= le.Uint64(b[24:]) * 0x27d4eb2f165667c5
	return h ^ h>>29
}

// region encodes new[start:end] against old[lo:hi].
func (e *encoder) region(ctx context.Context, lo, hi, start, end int64) error {
	ob := make([]byte, hi-lo)
	if _, err := e.old.ReadAt(ob, lo); err != nil && err != io.EOF {
		return fmt.Errorf("patch: read the old artifact at %d: %w", lo, err)
	}
	nb := make([]byte, end-start)
	if _, err := e.new.ReadAt(nb, start); err != nil && err != io.EOF {
		return fmt.Errorf("patch: read the new artifact at %d: %w", start, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Earliest position of each window; map iteration order never matters.
	pos := make(map[uint64]int32, len(ob))
	for k := len(ob) - MinMatch; k >= 0; k-- {
		pos[window(ob[k:])] = int32(k)
	}
	i := 0
	for i < len(nb) {
		if i+MinMatch <= len(nb) {
			if k, ok := pos[window(nb[i:])]; ok {
				k := int(k)
				n := 0
				for i+n < len(nb) && k+n < len(ob) && nb[i+n] == ob[k+n] {
					n++
				}
				// Back into the literal bytes pending from this region.
				b := 0
				for b < len(e.lit) && b < i && b < k && nb[i-b-1] == ob[k-b-1] {
					b++
				}
				if n+b >= MinMatch {
					e.lit = e.lit[:len(e.lit)-b]
					e.copy(lo+int64(k-b), int64(n+b))
					i += n
					continue
				}
			}
		}
		e.lit = append(e.lit, nb[i])
		i++
		if i%(64<<10) == 0 && e.over() {
			return fmt.Errorf("patch: %w (%d MiB): stopped at byte %d of the new artifact", ErrTooLarge, e.limit>>20, start+int64(i))
		}
	}
	if e.over() {
		return fmt.Errorf("patch: %w (%d MiB): stopped at byte %d of the new artifact", ErrTooLarge, e.limit>>20, end)
	}
	return nil
}
