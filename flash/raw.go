package flash

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/manifest"
)

// declared is what says how large an image without a bmap must be: the
// manifest.json next to it that names it (its size and sha256), else the
// image's own partition table (where its last partition ends).
type declared struct {
	size   int64  // -1: only the partition table can tell
	sha256 string // "" unless a manifest names the image
	by     string // what declared it, for messages
}

// manifestFor returns the size and sha256 manifest.json declares for
// image (NAME.img, or NAME.img.zst decompressed) when the manifest next to
// it names it; size -1 when there is none.
func manifestFor(image string) declared {
	m, err := manifest.Read(filepath.Dir(image))
	name := strings.TrimSuffix(filepath.Base(image), ".zst")
	if err != nil || m.Disk.File != name || m.Disk.Size <= 0 {
		return declared{size: -1}
	}
	return declared{size: m.Disk.Size, sha256: m.Disk.SHA256, by: filepath.Join(filepath.Dir(image), manifest.FileName)}
}

// checkSize refuses an image of size bytes that is not the size its
// manifest declares.
func (d declared) checkSize(image string, size int64) error {
	if d.size >= 0 && size != d.size {
		return fmt.Errorf("flash: %s is %d bytes, %s says %d: the image is cut short or is not the build's: %w; download or copy it again (compare SHA256SUMS)", image, size, d.by, d.size, ErrMismatch)
	}
	return nil
}

// checkTable reads the partition table of an image of size bytes from r
// (the image, or the disk it was written to) and refuses it when a
// partition it declares ends past size: the image was cut short. One
// without a readable table is refused too: without a bmap or a manifest
// nothing tells a whole image from a part of one.
func checkTable(r io.ReaderAt, name string, size int64) error {
	cut := func(detail string) error {
		return fmt.Errorf("flash: %s is %d bytes, but %s: the image is cut short (an interrupted download or copy?): %w; download or copy it again (compare SHA256SUMS)", name, size, detail, ErrMismatch)
	}
	if size < mbr.SectorSize {
		return cut("a disk image starts with a 512-byte partition table")
	}
	_, entries, err := mbr.Read(io.NewSectionReader(r, 0, size))
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return cut(fmt.Sprintf("its partition table goes on past its end (%v)", err))
	}
	if err != nil {
		return fmt.Errorf("flash: %s has no partition table flash can read (%v), and no bmap or manifest.json says how large it is: %w; pass --bmap FILE with the image's map", name, err, ErrMismatch)
	}
	var end int64
	for _, e := range entries {
		end = max(end, int64(e.Start+e.Sectors)*mbr.SectorSize)
	}
	if end > size {
		return cut(fmt.Sprintf("its partition table declares partitions up to byte %d", end))
	}
	return nil
}

// checkTarget refuses a target that is not a block device but lives
// under /dev, by its own path or the path a symlink leads to: a card
// reader's disk is a block device, and a regular file there is in RAM
// (/dev/shm), so a write to it would be "verified" and lost.
func checkTarget(path string, st os.FileInfo) error {
	if st != nil && st.Mode()&os.ModeDevice != 0 {
		return nil
	}
	where := filepath.Clean(path)
	if st != nil {
		if r, err := filepath.EvalSymlinks(path); err == nil {
			where = r
		}
	} else if r, err := filepath.EvalSymlinks(filepath.Dir(path)); err == nil {
		where = filepath.Join(r, filepath.Base(path))
	}
	if !underDev(filepath.Clean(path)) && !underDev(where) {
		return nil
	}
	if st == nil {
		return fmt.Errorf("flash: %s does not exist: is the card in the reader? (lsblk lists the disks)", path)
	}
	return fmt.Errorf("flash: %s is a regular file under /dev (%s), not a disk: %w; is the card in the reader? (lsblk lists the disks)", path, where, ErrNotDisk)
}

func underDev(p string) bool { return strings.HasPrefix(p, "/dev/") }
