package chunks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// The index file, version 1. All integers are big-endian; there is no
// padding, no optional field and nothing after the last entry, so one
// artifact chunked with one Params has exactly one index file.
//
//	offset  size  field
//	0       8     magic "PBCHUNKS"
//	8       4     version: 1
//	12      4     algorithm: 1 = FastCDC with the gear table of this package
//	16      4     Min
//	20      4     Avg
//	24      4     Max
//	28      8     artifact size in bytes
//	36      32    artifact sha256
//	68      4     number of chunks N
//	72      N×44  per chunk: offset (8), length (4), sha256 (32)
//
// The chunks tile the artifact in order: the first starts at 0, each
// starts where the one before ends, the last ends at the artifact's size;
// every chunk but the last is Min..Max bytes long, the last 1..Max.
const (
	Magic      = "PBCHUNKS"
	Version    = 1
	AlgFastCDC = 1
	headerSize = 72
	entrySize  = 44
)

// ErrMalformed is an index that does not parse or breaks a rule above.
var ErrMalformed = errors.New("malformed chunk index")

// Chunk is one entry of an index.
type Chunk struct {
	Offset int64
	Length uint32
	SHA256 [32]byte
}

// End is the offset after the chunk.
func (c Chunk) End() int64 { return c.Offset + int64(c.Length) }

// Index lists the chunks of one artifact.
type Index struct {
	Params Params
	Size   int64
	SHA256 [32]byte
	Chunks []Chunk
}

// Build chunks r (the whole artifact, read to EOF) and returns its index.
func Build(ctx context.Context, r io.Reader, p Params) (*Index, error) {
	c, err := NewChunker(r, p)
	if err != nil {
		return nil, err
	}
	ix := &Index{Params: p}
	whole := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		off, b, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		whole.Write(b)
		ix.Chunks = append(ix.Chunks, Chunk{Offset: off, Length: uint32(len(b)), SHA256: sha256.Sum256(b)})
		ix.Size = off + int64(len(b))
	}
	copy(ix.SHA256[:], whole.Sum(nil))
	return ix, nil
}

// Hex is the artifact's sha256 as the channel document writes it.
func (ix *Index) Hex() string { return hex.EncodeToString(ix.SHA256[:]) }

// MarshalBinary writes the index file. It refuses an index that Parse
// would refuse.
func (ix *Index) MarshalBinary() ([]byte, error) {
	if err := ix.check(); err != nil {
		return nil, err
	}
	b := make([]byte, headerSize, headerSize+entrySize*len(ix.Chunks))
	copy(b, Magic)
	be := binary.BigEndian
	be.PutUint32(b[8:], Version)
	be.PutUint32(b[12:], AlgFastCDC)
	be.PutUint32(b[16:], ix.Params.Min)
	be.PutUint32(b[20:], ix.Params.Avg)
	be.PutUint32(b[24:], ix.Params.Max)
	be.PutUint64(b[28:], uint64(ix.Size))
	copy(b[36:68], ix.SHA256[:])
	be.PutUint32(b[68:], uint32(len(ix.Chunks)))
	for _, c := range ix.Chunks {
		b = be.AppendUint64(b, uint64(c.Offset))
		b = be.AppendUint32(b, c.Length)
		b = append(b, c.SHA256[:]...)
	}
	return b, nil
}

// Parse reads an index file strictly: any deviation from the format is
// ErrMalformed. It allocates no more than the input's size warrants.
func Parse(b []byte) (*Index, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if len(b) < headerSize {
		return nil, bad("%d bytes, shorter than the %d-byte header", len(b), headerSize)
	}
	if !bytes.Equal(b[:8], []byte(Magic)) {
		return nil, bad("no %q magic", Magic)
	}
	be := binary.BigEndian
	if v := be.Uint32(b[8:]); v != Version {
		return nil, bad("version %d, this program reads version %d", v, Version)
	}
	if a := be.Uint32(b[12:]); a != AlgFastCDC {
		return nil, bad("unknown chunking algorithm %d", a)
	}
	ix := &Index{Params: Params{Min: be.Uint32(b[16:]), Avg: be.Uint32(b[20:]), Max: be.Uint32(b[24:])}}
	size := be.Uint64(b[28:])
	if size > 1<<62 {
		return nil, bad("artifact size %d", size)
	}
	ix.Size = int64(size)
	copy(ix.SHA256[:], b[36:68])
	n := be.Uint32(b[68:])
	if rest := len(b) - headerSize; rest%entrySize != 0 || uint64(rest/entrySize) != uint64(n) {
		return nil, bad("%d chunks announced, %d bytes of entries follow (want %d)", n, rest, uint64(n)*entrySize)
	}
	ix.Chunks = make([]Chunk, n)
	for i := range ix.Chunks {
		e := b[headerSize+i*entrySize:]
		off := be.Uint64(e)
		if off > 1<<62 {
			return nil, bad("chunk %d: offset %d", i, off)
		}
		ix.Chunks[i] = Chunk{Offset: int64(off), Length: be.Uint32(e[8:])}
		copy(ix.Chunks[i].SHA256[:], e[12:44])
	}
	if err := ix.check(); err != nil {
		return nil, err
	}
	return ix, nil
}

// check enforces the format's rules on a parsed or built index.
func (ix *Index) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if err := ix.Params.Validate(); err != nil {
		return bad("%v", err)
	}
	if ix.Size == 0 && len(ix.Chunks) != 0 || ix.Size > 0 && len(ix.Chunks) == 0 {
		return bad("%d chunks for an artifact of %d bytes", len(ix.Chunks), ix.Size)
	}
	var at int64
	for i, c := range ix.Chunks {
		last := i == len(ix.Chunks)-1
		switch {
		case c.Offset != at:
			return bad("chunk %d starts at %d, the one before ends at %d", i, c.Offset, at)
		case c.Length == 0 || c.Length > ix.Params.Max || !last && c.Length < ix.Params.Min:
			return bad("chunk %d is %d bytes, outside %d..%d", i, c.Length, ix.Params.Min, ix.Params.Max)
		}
		at = c.End()
	}
	if at != ix.Size {
		return bad("chunks end at %d, the artifact is %d bytes", at, ix.Size)
	}
	return nil
}
