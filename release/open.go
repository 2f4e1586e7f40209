package release

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrDamaged means a NAME.img.zst is cut short or damaged.
var ErrDamaged = errors.New("the compressed image is cut or damaged")

// Image is a disk image opened for reading at any offset: NAME.img as it
// is, or NAME.img.zst decompressed only as far as it is read, into an
// unlinked temporary file that holds no all-zero block (what reading a
// partition table and a boot partition needs is a few MiB of it).
type Image struct {
	size int64
	f    *os.File // the image, or the decompressed part of a .zst
	// A .zst: its file, decoder and how far it was decompressed.
	zf   *os.File
	dec  *zstd.Decoder
	done int64
	err  error
	name string
}

// Open opens NAME.img or NAME.img.zst (by its suffix) for reading. A
// folder, an empty file and a .zst that does not record its size are
// refused with what to give instead.
func Open(path string) (*Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a folder: give the image in it (NAME%s or NAME.img)", path, ZstSuffix)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s is empty (0 bytes): not a disk image; copy or download it again", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".zst") {
		return &Image{size: st.Size(), f: f, name: path}, nil
	}
	var hdr zstd.Header
	head := make([]byte, zstd.HeaderMaxSize)
	n, _ := io.ReadFull(f, head)
	if err := hdr.Decode(head[:n]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s is not zstd-compressed (%v): %w", path, err, ErrDamaged)
	}
	if !hdr.HasFCS {
		f.Close()
		return nil, fmt.Errorf("%s does not record the size of the image in it (pibake's do): decompress it (zstd -d) and give the .img", path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	dec, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		f.Close()
		return nil, err
	}
	tmp, err := os.CreateTemp("", "pibake-image-*")
	if err == nil {
		os.Remove(tmp.Name()) // unlinked: gone when closed, whatever happens
		err = tmp.Truncate(int64(hdr.FrameContentSize))
	}
	if err != nil {
		dec.Close()
		f.Close()
		return nil, fmt.Errorf("%s: a temporary file to decompress into: %w", path, err)
	}
	return &Image{size: int64(hdr.FrameContentSize), f: tmp, zf: f, dec: dec, name: path}, nil
}

// Size is the image's size in bytes (decompressed).
func (im *Image) Size() int64 { return im.size }

// ReadAt reads the image at off; past its end it returns io.EOF.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off >= im.size {
		return 0, io.EOF
	}
	want := min(off+int64(len(p)), im.size)
	if err := im.fill(want); err != nil {
		return 0, err
	}
	n, err := im.f.ReadAt(p[:want-off], off)
	if err == nil && want-off < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// fill decompresses a .zst up to byte end, skipping all-zero blocks.
func (im *Image) fill(end int64) error {
	if im.dec == nil || im.done >= end {
		return nil
	}
	if im.err != nil {
		return im.err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for im.done < end {
		n, err := io.ReadFull(im.dec, buf[:min(int64(len(buf)), im.size-im.done)])
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := im.f.WriteAt(buf[:n], im.done); werr != nil {
				im.err = fmt.Errorf("%s: decompressing: %w", im.name, werr)
				return im.err
			}
		}
		im.done += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			im.err = fmt.Errorf("%s at byte %d of the image (it records %d): %v: %w; download it again (compare SHA256SUMS)", im.name, im.done, im.size, err, ErrDamaged)
			return im.err
		}
	}
	return nil
}

// Close releases the image (and removes what was decompressed).
func (im *Image) Close() error {
	if im.dec != nil {
		im.dec.Close()
		im.zf.Close()
	}
	return im.f.Close()
}
