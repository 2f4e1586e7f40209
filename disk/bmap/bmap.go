// Package bmap writes and reads block maps in the bmap 2.0 XML format of
// bmaptool (Debian's bmap-tools): the list of an image's blocks that hold
// data, each run with its sha256, so that a flasher writes only those and
// checks them.
//
// Which blocks are mapped is the caller's to say, as byte [Extents]: the
// builder records every range its assembler writes ([Recorder]), so the
// map never depends on the host filesystem's holes (FIEMAP, SEEK_DATA).
// Every written byte is mapped, zeros included: a FAT's free entries are
// zeros that a card's old contents must not replace.
//
// Limits: the block size is [BlockSize] (4096) when writing; reading
// accepts any power of two from 512 to 1 MiB. Only version 2.x (and the
// identical 1.4) with ChecksumType sha256 is read; the map's own
// BmapFileChecksum is always checked. Ranges must be sorted, disjoint and
// inside the image. A map file may be at most [MaxFileSize] bytes.
package bmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
)

// BlockSize is the block size of the maps this package writes.
const BlockSize = 4096

// MaxFileSize bounds the map files Parse reads (a 2 GiB image with every
// other block mapped would need about 50 MB; real maps are a few KiB).
const MaxFileSize = 64 << 20

// ErrFormat means a map file is not a bmap this package reads.
var ErrFormat = errors.New("not a valid bmap 2.0 file")

// ErrMismatch means an image does not match its map: another size or a
// range whose bytes have another sha256.
var ErrMismatch = errors.New("the image does not match its bmap")

// Extent is a run of bytes: Off and Len in bytes.
type Extent struct{ Off, Len int64 }

// Extents is a set of byte ranges. Add in any order; Normalize sorts and
// merges them.
type Extents []Extent

// Add records n bytes at off.
func (e *Extents) Add(off, n int64) {
	if n <= 0 {
		return
	}
	// Writes are mostly sequential: extend the last extent in place.
	if k := len(*e); k > 0 {
		last := &(*e)[k-1]
		if off >= last.Off && off <= last.Off+last.Len {
			last.Len = max(last.Len, off+n-last.Off)
			return
		}
	}
	*e = append(*e, Extent{off, n})
}

// Normalize returns the extents sorted by offset, overlapping and touching
// ones merged.
func (e Extents) Normalize() Extents {
	s := append(Extents(nil), e...)
	sort.Slice(s, func(i, j int) bool { return s[i].Off < s[j].Off })
	var out Extents
	for _, x := range s {
		if k := len(out); k > 0 && x.Off <= out[k-1].Off+out[k-1].Len {
			out[k-1].Len = max(out[k-1].Len, x.Off+x.Len-out[k-1].Off)
			continue
		}
		out = append(out, x)
	}
	return out
}

// Recorder is an io.WriterAt that passes writes to W and records where
// they landed.
type Recorder struct {
	W       io.WriterAt
	Written Extents
}

// WriteAt implements io.WriterAt.
func (r *Recorder) WriteAt(p []byte, off int64) (int, error) {
	n, err := r.W.WriteAt(p, off)
	r.Written.Add(off, int64(n))
	return n, err
}

// Range is a run of mapped blocks, First to Last inclusive, with the
// sha256 (lower-case hex) of its bytes. The last block of an image whose
// size is not a multiple of the block size is short.
type Range struct {
	First, Last int64
	SHA256      string
}

// Map is a block map.
type Map struct {
	ImageSize int64
	BlockSize int64
	Ranges    []Range
}

// Blocks is the number of blocks of the image.
func (m *Map) Blocks() int64 { return (m.ImageSize + m.BlockSize - 1) / m.BlockSize }

// MappedBlocks is the number of mapped blocks.
func (m *Map) MappedBlocks() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += r.Last - r.First + 1
	}
	return n
}

// Span returns the byte offset and length of r in the image.
func (m *Map) Span(r Range) (off, n int64) {
	off = r.First * m.BlockSize
	end := min((r.Last+1)*m.BlockSize, m.ImageSize)
	return off, end - off
}

// MappedBytes is the number of image bytes the ranges cover.
func (m *Map) MappedBytes() int64 {
	var n int64
	for _, r := range m.Ranges {
		_, k := m.Span(r)
		n += k
	}
	return n
}

// Create maps the blocks of the size-byte image in img that the extents
// touch, rounded out to whole blocks, and computes each range's sha256.
func Create(img io.ReaderAt, size int64, written Extents) (*Map, error) {
	m := &Map{ImageSize: size, BlockSize: BlockSize}
	for _, x := range written.Normalize() {
		if x.Off < 0 || x.Off+x.Len > size {
			return nil, fmt.Errorf("bmap: extent %d+%d lies outside the %d-byte image", x.Off, x.Len, size)
		}
		first, last := x.Off/BlockSize, (x.Off+x.Len-1)/BlockSize
		if k := len(m.Ranges); k > 0 && first <= m.Ranges[k-1].Last+1 {
			m.Ranges[k-1].Last = max(m.Ranges[k-1].Last, last)
			continue
		}
		m.Ranges = append(m.Ranges, Range{First: first, Last: last})
	}
	buf := make([]byte, 1<<20)
	for i := range m.Ranges {
		off, n := m.Span(m.Ranges[i])
		h := sha256.New()
		if _, err := io.CopyBuffer(h, io.NewSectionReader(img, off, n), buf); err != nil {
			return nil, fmt.Errorf("bmap: reading the image at %d: %w", off, err)
		}
		m.Ranges[i].SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return m, nil
}

// Full maps every block of a size-byte image as one range without a
// checksum: what a flasher writes when there is no map.
func Full(size int64) *Map {
	m := &Map{ImageSize: size, BlockSize: BlockSize}
	if size > 0 {
		m.Ranges = []Range{{First: 0, Last: m.Blocks() - 1}}
	}
	return m
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// zeroSum stands in for BmapFileChecksum while the file's own checksum is
// computed, as bmaptool does.
var zeroSum = bytes.Repeat([]byte("0"), sha256.Size*2)

// Written is an io.ReaderAt over a file that was created empty (sparse)
// and then written only at the extents: it reads the extents from R and
// returns zeros everywhere else without asking the file system, so a
// pass over a 2 GiB image that holds 0.5 GiB of data reads 0.5 GiB.
type Written struct {
	R       io.ReaderAt
	Extents Extents // normalized
	Size    int64
}

// ReadAt implements io.ReaderAt.
func (w Written) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("bmap: negative offset")
	}
	if off >= w.Size {
		return 0, io.EOF
	}
	want := p
	var eof error
	if rest := w.Size - off; int64(len(p)) > rest {
		want, eof = p[:rest], io.EOF
	}
	clear(want)
	end := off + int64(len(want))
	// The first extent that ends after off.
	i := sort.Search(len(w.Extents), func(i int) bool { return w.Extents[i].Off+w.Extents[i].Len > off })
	for ; i < len(w.Extents) && w.Extents[i].Off < end; i++ {
		x := w.Extents[i]
		from, to := max(x.Off, off), min(x.Off+x.Len, end)
		if n, err := w.R.ReadAt(want[from-off:to-off], from); err != nil && !(err == io.EOF && int64(n) == to-from) {
			return int(from - off + int64(n)), err
		}
	}
	return len(want), eof
}
