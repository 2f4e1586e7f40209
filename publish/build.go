package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/updater/channel"
)

// build is a build output folder that has been read and checked: its
// manifest, its image open for reading, and the artifacts cut from it.
type build struct {
	m     *manifest.Manifest
	img   *os.File
	parts []part
}

// part is one artifact: a byte range of the image and the size of the
// partition a device writes it to.
type part struct {
	name      string
	off, n    int64
	partition int64
}

// readBuild reads a build output folder's manifest, checks its image
// against it and finds the artifacts in the image's partition table. The
// caller closes the image.
func readBuild(ctx context.Context, dir string) (*build, error) {
	m, err := manifest.Read(dir)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return nil, fmt.Errorf("%s is not a build output folder: %w", dir, err)
	} else if st, serr := os.Stat(filepath.Join(dir, manifest.FileName)); serr == nil && st.Size() == 0 {
		return nil, fmt.Errorf("%s is empty: the build did not finish, or the file was cut; build again", filepath.Join(dir, manifest.FileName))
	} else if err != nil {
		return nil, err
	}
	img, err := os.Open(filepath.Join(dir, m.Disk.File))
	if err != nil {
		return nil, err
	}
	parts, err := imageParts(ctx, img, m)
	if err != nil {
		img.Close()
		return nil, err
	}
	return &build{m: m, img: img, parts: parts}, nil
}

// imageParts checks the image's sha256 against the manifest and returns
// its artifacts: the boot partition's used bytes (with tryboot, each
// slot's), then the root filesystem.
func imageParts(ctx context.Context, img *os.File, m *manifest.Manifest) ([]part, error) {
	if got, err := readerSHA256(ctx, io.NewSectionReader(img, 0, 1<<62)); err != nil {
		return nil, err
	} else if got != m.Disk.SHA256 {
		return nil, fmt.Errorf("%s has sha256 %s, its manifest says %s: corrupt or modified build", m.Disk.File, got, m.Disk.SHA256)
	}
	lay, _, err := inspect.Layout(img, m.Disk.Size)
	if err != nil {
		return nil, err
	}
	// With the U-Boot chain both boot partitions hold the same bytes. With
	// tryboot each holds its own cmdline.txt (its root and slot), so each
	// slot gets its own boot artifact, boot.a and boot.b.
	boots := [][2]string{{"boot", layout.BootA}}
	if bootchain.Chain(m.Bootloader) == bootchain.Tryboot {
		boots = [][2]string{{channel.BootArtifact(bootchain.A.String()), bootchain.A.Boot()}, {channel.BootArtifact(bootchain.B.String()), bootchain.B.Boot()}}
	}
	var parts []part
	for _, b := range boots {
		p, _ := lay.Part(b[1])
		n, err := usedLength(img, p.Offset, p.Size)
		if err != nil {
			return nil, err
		}
		parts = append(parts, part{b[0], p.Offset, n, p.Size})
	}
	root, _ := lay.Part(layout.RootA)
	return append(parts, part{"root", root.Offset, m.Rootfs.Size, root.Size}), nil
}

// usedLength is the partition's length without its trailing all-zero
// 4 KiB blocks: the free space of a freshly written FAT filesystem.
func usedLength(r io.ReaderAt, off, size int64) (int64, error) {
	const blk = 4096
	buf := make([]byte, blk)
	for end := size; end > 0; end -= blk {
		if _, err := r.ReadAt(buf, off+end-blk); err != nil {
			return 0, err
		}
		for _, b := range buf {
			if b != 0 {
				return end, nil
			}
		}
	}
	return 0, errors.New("boot partition is empty")
}

func readerSHA256(ctx context.Context, r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), ctx.Err()
}
