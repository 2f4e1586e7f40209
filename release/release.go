// Package release writes the forms of a built image that people download
// and flash, next to NAME.img in the build's output folder:
//
//	NAME.img.zst  the whole image, zstd-compressed (one frame, content size
//	              and checksum in the frame), for 'pibake flash' and bmaptool
//	NAME.bmap     its block map (disk/bmap): the blocks the assembler wrote
//
// Both are pure functions of the image and the written extents: the
// encoder runs with fixed options and a fixed concurrency, so neither the
// clock, the path, the host's core count nor its filesystem shows in them.
package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pibake/pibake/disk/bmap"
)

// Suffixes of the release files, after the image's name.
const (
	ZstSuffix  = ".img.zst"
	BmapSuffix = ".bmap"
)

// encoderConcurrency is fixed, not GOMAXPROCS: the output must not depend
// on the build host. With a stream, more than one only overlaps reading
// and compressing; the frame is the same (TestZstIndependentOfConcurrency).
const encoderConcurrency = 2

// File is one release file.
type File struct {
	Name   string
	Size   int64
	SHA256 string
}

// Result is what Write wrote.
type Result struct {
	Zst, Bmap File
	Map       *bmap.Map
	ZstTime   time.Duration // for people; nothing written depends on it
}

// Name is the base name of an image file without ".img".
func Name(imgName string) string {
	if ext := filepath.Ext(imgName); ext == ".img" {
		return imgName[:len(imgName)-len(ext)]
	}
	return imgName
}

// Write writes NAME.img.zst and NAME.bmap next to dir/imgName, mapping the
// blocks that written touches.
func Write(ctx context.Context, dir, imgName string, written bmap.Extents) (*Result, error) {
	imgPath := filepath.Join(dir, imgName)
	img, err := os.Open(imgPath)
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	defer img.Close()
	st, err := img.Stat()
	if err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	m, err := bmap.Create(img, st.Size(), written)
	if err != nil {
		return nil, fmt.Errorf("release: %s: %w", imgName, err)
	}
	base := Name(imgName)
	res := &Result{Map: m}
	if res.Bmap, err = writeFile(filepath.Join(dir, base+BmapSuffix), func(w io.Writer) error {
		_, err := w.Write(m.Marshal())
		return err
	}); err != nil {
		return nil, err
	}
	start := time.Now()
	if res.Zst, err = writeFile(filepath.Join(dir, base+ZstSuffix), func(w io.Writer) error {
		// Only the written ranges are read; the rest is zeros.
		return Compress(ctx, w, bmap.Written{R: img, Extents: written.Normalize(), Size: st.Size()}, st.Size())
	}); err != nil {
		return nil, err
	}
	res.ZstTime = time.Since(start)
	return res, nil
}

// Compress writes the size bytes of r to w as one zstd frame that records
// its content size and checksum.
func Compress(ctx context.Context, w io.Writer, r io.ReaderAt, size int64) error {
	return compress(ctx, w, r, size, encoderConcurrency)
}

func compress(ctx context.Context, w io.Writer, r io.ReaderAt, size int64, concurrency int) error {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(concurrency), zstd.WithEncoderCRC(true))
	if err != nil {
		return err
	}
	enc.ResetContentSize(w, size)
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			enc.Close()
			return err
		}
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if n > 0 {
			if _, werr := enc.Write(buf[:n]); werr != nil {
				enc.Close()
				return werr
			}
			off += int64(n)
		}
		if err != nil && !(err == io.EOF && off == size) {
			enc.Close()
			return fmt.Errorf("reading the image at %d: %w", off, err)
		}
	}
	return enc.Close()
}

// writeFile creates path, fills it with fill while hashing, and syncs it.
func writeFile(path string, fill func(io.Writer) error) (File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return File{}, fmt.Errorf("release: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	err = fill(cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return File{}, fmt.Errorf("release: write %s: %w", filepath.Base(path), err)
	}
	return File{Name: filepath.Base(path), Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
