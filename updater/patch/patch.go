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
// memory); copies come from one source artifact.
package patch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// ErrMalformed is a patch that does not parse or breaks a rule above.
var ErrMalformed = errors.New("malformed patch")

// Op is one step: a copy of Len source bytes from Off, or the bytes Data.
type Op struct {
	Off  int64
	Len  int64
	Data []byte // non-nil: an add
}

// Patch is a parsed patch file.
type Patch struct {
	SourceSize   int64
	SourceSHA256 [32]byte
	TargetSize   int64
	TargetSHA256 [32]byte
	Ops          []Op
}

// MarshalBinary writes the patch file.
func (p *Patch) MarshalBinary() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	b := make([]byte, headerSize)
	copy(b, Magic)
	be := binary.BigEndian
	be.PutUint64(b[8:], uint64(p.SourceSize))
	copy(b[16:48], p.SourceSHA256[:])
	be.PutUint64(b[48:], uint64(p.TargetSize))
	copy(b[56:88], p.TargetSHA256[:])
	for _, op := range p.Ops {
		if op.Data != nil {
			b = append(b, opAdd)
			b = binary.AppendUvarint(b, uint64(len(op.Data)))
			b = append(b, op.Data...)
			continue
		}
		b = append(b, opCopy)
		b = binary.AppendUvarint(b, uint64(op.Off))
		b = binary.AppendUvarint(b, uint64(op.Len))
	}
	return b, nil
}

// Parse reads a patch file strictly; adds point into b.
func Parse(b []byte) (*Patch, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if len(b) < headerSize || !bytes.Equal(b[:8], []byte(Magic)) {
		return nil, bad("no %q header", Magic)
	}
	be := binary.BigEndian
	p := &Patch{}
	ss, ts := be.Uint64(b[8:]), be.Uint64(b[48:])
	if ss > 1<<62 || ts > 1<<62 {
		return nil, bad("sizes %d and %d", ss, ts)
	}
	p.SourceSize, p.TargetSize = int64(ss), int64(ts)
	copy(p.SourceSHA256[:], b[16:48])
	copy(p.TargetSHA256[:], b[56:88])
	r := b[headerSize:]
	uv := func(what string) (int64, error) {
		v, n := binary.Uvarint(r)
		if n <= 0 || v > 1<<62 || n != len(binary.AppendUvarint(nil, v)) { // minimal encodings only
			return 0, bad("op %d: bad %s", len(p.Ops), what)
		}
		r = r[n:]
		return int64(v), nil
	}
	var at int64
	for at < p.TargetSize {
		if len(r) == 0 {
			return nil, bad("ops end at %d of %d bytes", at, p.TargetSize)
		}
		tag := r[0]
		r = r[1:]
		var op Op
		switch tag {
		case opCopy:
			off, err := uv("offset")
			if err != nil {
				return nil, err
			}
			n, err := uv("length")
			if err != nil {
				return nil, err
			}
			op = Op{Off: off, Len: n}
		case opAdd:
			n, err := uv("length")
			if err != nil {
				return nil, err
			}
			if n > int64(len(r)) {
				return nil, bad("op %d: %d literal bytes, %d left", len(p.Ops), n, len(r))
			}
			op = Op{Len: n, Data: r[:n:n]}
			r = r[n:]
		default:
			return nil, bad("op %d: unknown tag %#x", len(p.Ops), tag)
		}
		p.Ops = append(p.Ops, op)
		at += op.Len
	}
	if len(r) != 0 {
		return nil, bad("%d bytes after the last op", len(r))
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Patch) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	var at int64
	for i, op := range p.Ops {
		switch {
		case op.Len <= 0 || op.Data != nil && int64(len(op.Data)) != op.Len:
			return bad("op %d: length %d", i, op.Len)
		case op.Data == nil && (op.Off < 0 || op.Off > p.SourceSize || op.Len > p.SourceSize-op.Off):
			return bad("op %d: copy of %d bytes from %d, outside the %d-byte source", i, op.Len, op.Off, p.SourceSize)
		case op.Len > p.TargetSize-at:
			return bad("op %d: ends after the %d-byte target", i, p.TargetSize)
		}
		at += op.Len
	}
	if at != p.TargetSize {
		return bad("ops produce %d bytes, the target is %d", at, p.TargetSize)
	}
	return nil
}

// Target is where Apply writes (install.Target has these).
type Target interface {
	io.WriterAt
	Size() int64
	Sync() error
}

// Apply writes the target of p into dst at offset 0, copies read from src
// (the source artifact), and syncs. beat, if not nil, is called after
// each megabyte or op. The caller checks the result's sha256.
func Apply(p *Patch, src io.ReaderAt, dst Target, beat func()) error {
	if p.TargetSize > dst.Size() {
		return fmt.Errorf("patch: %d bytes for a %d-byte partition", p.TargetSize, dst.Size())
	}
	buf := make([]byte, 1<<20)
	var at int64
	for _, op := range p.Ops {
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
	}
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("patch: sync: %w", err)
	}
	return nil
}
