// Package chunks splits an artifact into content-defined chunks and reads
// and writes the chunk index that lists them (format: index.go). A device
// chunks its own slots with the same parameters to find the chunks of a
// new release it already holds; only the others are downloaded.
//
// The chunker is FastCDC (Xia et al., USENIX ATC 2016) with normalised
// chunking: a gear rolling hash over a 64-byte window, no cut before Min,
// a stricter mask before Avg and a looser one after it, a forced cut at
// Max. The defaults are casync's bounds: 16, 64 and 256 KiB. The gear
// table is derived from sha256 (gearTable), so the cut points are a pure
// function of the bytes and the parameters, on every machine.
//
// Limits: chunks are at most 16 MiB (MaxChunk); the whole artifact is
// hashed once while chunking, so an index costs one sequential read.
package chunks

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Params are the chunker's bounds in bytes. Avg is a power of two.
type Params struct {
	Min, Avg, Max uint32
}

// Default are casync's bounds.
var Default = Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

// MaxChunk bounds Params.Max: a chunk is held in memory whole.
const MaxChunk = 16 << 20

// Validate checks that the chunker can run with p.
func (p Params) Validate() error {
	switch {
	case p.Min < 64:
		return fmt.Errorf("chunk minimum %d is below 64 bytes (the hash window)", p.Min)
	case p.Avg&(p.Avg-1) != 0 || p.Avg < p.Min || p.Avg > p.Max:
		return fmt.Errorf("chunk average %d must be a power of two between the minimum %d and the maximum %d", p.Avg, p.Min, p.Max)
	case p.Max > MaxChunk:
		return fmt.Errorf("chunk maximum %d is above %d", p.Max, MaxChunk)
	}
	return nil
}

// gear is the table of the rolling hash: entry i is the first 8 bytes
// (big-endian) of sha256("pibake gear v1" || byte(i)). Changing it changes
// every cut point, and so the index format's version.
var gear = gearTable()

func gearTable() (t [256]uint64) {
	for i := range t {
		s := sha256.Sum256(append([]byte("pibake gear v1"), byte(i)))
		t[i] = binary.BigEndian.Uint64(s[:8])
	}
	return t
}

// masks are FastCDC's two masks (normalisation level 2): two bits more
// than log2(Avg) before Avg, two fewer after. They test the hash's top
// bits, which depend on the last 64 bytes (each step shifts left by one).
func (p Params) masks() (strict, loose uint64) {
	b := bits.TrailingZeros32(p.Avg)
	return ^uint64(0) << (64 - (b + 2)), ^uint64(0) << (64 - max(b-2, 1))
}

// cut returns the length of the chunk at the start of data: data holds
// the rest of the input, or at least Max bytes of it.
func (p Params) cut(data []byte) int {
	n := len(data)
	if n <= int(p.Min) {
		return n
	}
	if n > int(p.Max) {
		n = int(p.Max)
	}
	strict, loose := p.masks()
	normal := min(int(p.Avg), n)
	var h uint64
	i := int(p.Min)
	for ; i < normal; i++ {
		h = h<<1 + gear[data[i]]
		if h&strict == 0 {
			return i + 1
		}
	}
	for ; i < n; i++ {
		h = h<<1 + gear[data[i]]
		if h&loose == 0 {
			return i + 1
		}
	}
	return n
}

// Chunker reads chunks from a stream.
type Chunker struct {
	p   Params
	r   io.Reader
	buf []byte // buf[start:end] is read, not yet returned
	st  int
	end int
	off int64
	eof bool
}

// NewChunker chunks r with p (which must Validate).
func NewChunker(r io.Reader, p Params) (*Chunker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Chunker{p: p, r: r, buf: make([]byte, 2*int(p.Max))}, nil
}

// Next returns the next chunk's offset and bytes (valid until the next
// call), or io.EOF after the last.
func (c *Chunker) Next() (int64, []byte, error) {
	if c.end-c.st < int(c.p.Max) && !c.eof {
		copy(c.buf, c.buf[c.st:c.end])
		c.end -= c.st
		c.st = 0
		for c.end < len(c.buf) && !c.eof {
			n, err := c.r.Read(c.buf[c.end:])
			c.end += n
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return 0, nil, fmt.Errorf("chunk at offset %d: read: %w", c.off+int64(c.end), err)
			}
		}
	}
	if c.st == c.end {
		return 0, nil, io.EOF
	}
	n := c.p.cut(c.buf[c.st:c.end])
	b := c.buf[c.st : c.st+n]
	off := c.off
	c.st += n
	c.off += int64(n)
	return off, b, nil
}
