package flash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/pibake/pibake/disk/bmap"
	"golang.org/x/sys/unix"
)

const directAlign = 4096

// verify reads every mapped range back from the device, past the page
// cache, and compares it with what was written. It returns how the cache
// was bypassed.
func verify(ctx context.Context, dev *device, m *bmap.Map, sums []string, prog *progress) (string, error) {
	method := ""
	if dev.block {
		// Drop the block device's buffer cache, so even a buffered read
		// below goes to the disk.
		if err := unix.IoctlSetInt(int(dev.f.Fd()), unix.BLKFLSBUF, 0); err == nil {
			method = "BLKFLSBUF, "
		}
	}
	r, how, closeFn := openReadBack(dev)
	defer closeFn()
	method += how
	buf := alignedBuffer(1<<20, directAlign)
	for i, rg := range m.Ranges {
		off, n := m.Span(rg)
		h := sha256.New()
		for pos := off; pos < off+n; {
			if err := ctx.Err(); err != nil {
				return method, err
			}
			want := min(int64(len(buf)), off+n-pos)
			// O_DIRECT reads whole aligned blocks: round the length up
			// (the image is a multiple of 4 KiB; a short tail falls back).
			k := (want + directAlign - 1) / directAlign * directAlign
			got, err := r.ReadAt(buf[:k], pos)
			if int64(got) < want {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				// A short read at the end of a file opened O_DIRECT:
				// read the tail through the cache.
				if _, err2 := dev.f.ReadAt(buf[:want], pos); err2 != nil {
					return method, fmt.Errorf("reading back at byte %d: %w", pos, err)
				}
			}
			h.Write(buf[:want])
			pos += want
			prog.add(want)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sums[i] {
			return method, fmt.Errorf("blocks %d-%d (bytes %d-%d) read back with sha256 %s, %s was written: the card does not keep what is written to it (a fake-capacity or failing card?): %w", rg.First, rg.Last, off, off+n-1, got, sums[i], ErrMismatch)
		}
	}
	return method, nil
}

// openReadBack opens the device a second time with O_DIRECT; where that
// is refused (tmpfs, some filesystems), it drops the file's pages with
// posix_fadvise(DONTNEED) after the sync and reads through the cache.
func openReadBack(dev *device) (io.ReaderAt, string, func()) {
	f, err := os.OpenFile(dev.path, os.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err == nil {
		probe := alignedBuffer(directAlign, directAlign)
		if _, err = f.ReadAt(probe, 0); err == nil || errors.Is(err, io.EOF) {
			return f, "O_DIRECT read-back", func() { f.Close() }
		}
		f.Close()
	}
	_ = unix.Fadvise(int(dev.f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return dev.f, "posix_fadvise(DONTNEED) then buffered read-back (O_DIRECT refused)", func() {}
}

// alignedBuffer returns n bytes whose address is a multiple of align.
func alignedBuffer(n, align int) []byte {
	b := make([]byte, n+align)
	shift := 0
	if rem := int(uintptr(unsafe.Pointer(&b[0])) % uintptr(align)); rem != 0 {
		shift = align - rem
	}
	return b[shift : shift+n : shift+n]
}
