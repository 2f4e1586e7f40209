// Package patch is the binary patch of an artifact against the same
// artifact of an earlier release: what a device running that release
// downloads instead of chunks when publish made one (docs/updates.md,
// "Patches"). A patch is a list of copies from the old artifact, which
// the device holds in its running slot, and literal bytes; Encode makes
// one from the two artifacts and their chunk indexes, Apply writes the new
// artifact from it.
//
// A patch is trusted no more than a download: its own sha256 is signed in
// the chunk document and checked before it is parsed, and what Apply
// writes is read back and checked against the artifact's signed sha256
// before anything switches to it. A slot that does not hold the bytes the
// patch was made against gives another artifact, which that check refuses
// (the device then falls back to chunks, then to the full artifact).
//
// Limits: a patch is at most MaxSize bytes (the device holds it in
// memory); copies come from one source artifact. A Patch keeps its ops in
// their encoded form and decodes them one at a time (Parse, Apply, Ops),
// so the memory beyond the patch's own bytes does not grow with the number
// of ops: a MaxSize patch of 3-byte copies holds 11 million of them.
package patch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// The patch file, version 1. Integers in the header are big-endian; op
// fields are unsigned varints (encoding/binary's Uvarint), in their
// shortest encoding, so one patch has one file.
//
//	offset  size  field
//	0       8     magic "PBPATCH1"
//	8       8     source artifact size
//	16      32    source artifact sha256
//	48      8     target artifact size
//	56      32    target artifact sha256
//	88      ...   ops, until they have produced the target's size:
//	              'C' offset length   copy length bytes of the source from offset
//	              'A' length bytes    these bytes
//
// Every length is at least 1, every copy lies inside the source, the ops
// produce exactly the target's size and nothing follows the last one.
const (
	Magic      = "PBPATCH1"
	headerSize = 88
	opCopy     = 'C'
	opAdd      = 'A'
)

// MaxSize bounds a patch: publish makes none larger, a device reads none
// larger (it holds the patch in memory while it writes).
const MaxSize = 32 << 20

// ErrTooLarge is a patch that would pass MaxSize: Encode stops making it.
var ErrTooLarge = errors.New("the patch would be larger than a device reads")

// ErrMalformed is a patch that does not parse or breaks a rule above.
var ErrMalformed = errors.New("malformed patch")

// Op is one step: a copy of Len source bytes from Off, or the bytes Data.
type Op struct {
	Off  int64
	Len  int64
	Data []byte // non-nil: an add
}

// Patch is a patch file: its header, and its ops as the file encodes them.
type Patch struct {
	SourceSize   int64
	SourceSHA256 [32]byte
	TargetSize   int64
	TargetSHA256 [32]byte
	ops          []byte // the file from offset 88
}

// Ops yields the ops in order with their index (for _, op := range p.Ops),
// decoding each from the patch's bytes; an add's Data points into them.
// It stops at the first op that breaks a rule above (never, for a patch
// from Parse or Encode).
func (p *Patch) Ops(yield func(int, Op) bool) {
	_ = p.walk(func(i int, op Op) error {
		if !yield(i, op) {
			return errStop
		}
		return nil
	})
}

var errStop = errors.New("stop")

// appendOp encodes op after the ops p has; it checks nothing (walk does).
func (p *Patch) appendOp(op Op) {
	if op.Data != nil {
		p.ops = append(p.ops, opAdd)
		p.ops = binary.AppendUvarint(p.ops, uint64(len(op.Data)))
		p.ops = append(p.ops, op.Data...)
		return
	}
	p.ops = append(p.ops, opCopy)
	p.ops = binary.AppendUvarint(p.ops, uint64(op.Off))
	p.ops = binary.AppendUvarint(p.ops, uint64(op.Len))
}

// MarshalBinary writes the patch file.
func (p *Patch) MarshalBinary() ([]byte, error) {
	if err := p.walk(nil); err != nil {
		return nil, err
	}
	b := make([]byte, headerSize, headerSize+len(p.ops))
	copy(b, Magic)
	be := binary.BigEndian
	be.PutUint64(b[8:], uint64(p.SourceSize))
	copy(b[16:48], p.SourceSHA256[:])
	be.PutUint64(b[48:], uint64(p.TargetSize))
	copy(b[56:88], p.TargetSHA256[:])
	return append(b, p.ops...), nil
}

// Parse reads a patch file strictly: every op is decoded and checked, and
// none is kept apart from b, which the Patch goes on using (adds point
// into it).
func Parse(b []byte) (*Patch, error) {
	if len(b) < headerSize || !bytes.Equal(b[:8], []byte(Magic)) {
		return nil, malformed("no %q header", Magic)
	}
	be := binary.BigEndian
	p := &Patch{}
	ss, ts := be.Uint64(b[8:]), be.Uint64(b[48:])
	if ss > 1<<62 || ts > 1<<62 {
		return nil, malformed("sizes %d and %d", ss, ts)
	}
	p.SourceSize, p.TargetSize = int64(ss), int64(ts)
	copy(p.SourceSHA256[:], b[16:48])
	copy(p.TargetSHA256[:], b[56:88])
	p.ops = b[headerSize:len(b):len(b)]
	if err := p.walk(nil); err != nil {
		return nil, err
	}
	return p, nil
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// walk decodes the ops one by one, checks each against the rules above
// and hands it to fn (if not nil); it returns the first broken rule or the
// first error of fn.
func (p *Patch) walk(fn func(int, Op) error) error {
	r := p.ops
	var at int64
	for i := 0; len(r) > 0; i++ {
		op, n, err := decode(r)
		if err != nil {
			return malformed("op %d: %v", i, err)
		}
		r = r[n:]
		switch {
		case op.Data == nil && op.Len > p.SourceSize-op.Off:
			return malformed("op %d: copy of %d bytes from %d, outside the %d-byte source", i, op.Len, op.Off, p.SourceSize)
		case op.Len > p.TargetSize-at:
			return malformed("op %d: ends after the %d-byte target", i, p.TargetSize)
		}
		if fn != nil {
			if err := fn(i, op); err != nil {
				return err
			}
		}
		at += op.Len
	}
	if at != p.TargetSize {
		return malformed("ops produce %d bytes, the target is %d", at, p.TargetSize)
	}
	return nil
}

// decode reads the op at the start of r and how many bytes it takes.
func decode(r []byte) (Op, int, error) {
	k := 1
	uv := func(what string) (int64, error) {
		v, n := binary.Uvarint(r[k:])
		if n <= 0 || v > 1<<62 || n != (max(bits.Len64(v), 1)+6)/7 { // minimal encodings only
			return 0, fmt.Errorf("bad %s", what)
		}
		k += n
		return int64(v), nil
	}
	switch r[0] {
	case opCopy:
		off, err := uv("offset")
		if err != nil {
			return Op{}, 0, err
		}
		n, err := uv("length")
		if err != nil || n == 0 {
			return Op{}, 0, fmt.Errorf("bad length %d (%v)", n, err)
		}
		return Op{Off: off, Len: n}, k, nil
	case opAdd:
		n, err := uv("length")
		if err != nil || n == 0 {
			return Op{}, 0, fmt.Errorf("bad length %d (%v)", n, err)
		}
		if n > int64(len(r)-k) {
			return Op{}, 0, fmt.Errorf("%d literal bytes, %d left", n, len(r)-k)
		}
		return Op{Len: n, Data: r[k : k+int(n) : k+int(n)]}, k + int(n), nil
	}
	return Op{}, 0, fmt.Errorf("unknown tag %#x", r[0])
}

// Target is where Apply writes (install.Target has these).
type Target interface {
	io.WriterAt
	Size() int64
	Sync() error
}

// Apply writes the target of p into dst at offset 0, copies read from src
// (the source artifact), and syncs. It decodes the ops as it goes and
// holds one 1 MiB buffer whatever their number. beat, if not nil, is
// called after each megabyte or op. The caller checks the result's sha256.
func Apply(p *Patch, src io.ReaderAt, dst Target, beat func()) error {
	if p.TargetSize > dst.Size() {
		return fmt.Errorf("patch: %d bytes for a %d-byte partition", p.TargetSize, dst.Size())
	}
	buf := make([]byte, min(1<<20, p.TargetSize))
	var at int64
	err := p.walk(func(_ int, op Op) error {
		if op.Data != nil {
			if _, err := dst.WriteAt(op.Data, at); err != nil {
				return fmt.Errorf("patch: write at %d: %w", at, err)
			}
			at += op.Len
		}
		for done := int64(0); op.Data == nil && done < op.Len; {
			b := buf[:min(int64(len(buf)), op.Len-done)]
			if _, err := src.ReadAt(b, op.Off+done); err != nil {
				return fmt.Errorf("patch: read the source at %d: %w", op.Off+done, err)
			}
			if _, err := dst.WriteAt(b, at); err != nil {
				return fmt.Errorf("patch: write at %d: %w", at, err)
			}
			at += int64(len(b))
			done += int64(len(b))
			if beat != nil {
				beat()
			}
		}
		if beat != nil {
			beat()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("patch: sync: %w", err)
	}
	return nil
}
