package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/release"
)

// FAT labels. Both boot slots carry the same label and volume id so that
// boot-a and boot-b are byte-identical and one artifact fits either.
const (
	LabelBootsel = "BOOTSEL"
	LabelBoot    = "PIBOOT"
)

// dataWipe is how much of the data partition the image writes (as zeros):
// first boot formats the partition only when it finds no ext4 superblock
// there (bootinit.Ext4Size reads bytes 1024-2047), so a card that held an
// older image must get these bytes from a flash that skips unmapped blocks.
const dataWipe = 1 << 20

// assembleDisk writes the disk image, then its release forms (NAME.img.zst
// and NAME.bmap of the blocks written) while hashing it for the manifest.
func (b *build) assembleDisk(ctx context.Context) (string, error) {
	imgPath := filepath.Join(b.staging, b.imgName)
	written, err := b.assemble(imgPath)
	if err != nil {
		return "", err
	}
	os.Remove(b.rootImg)
	// The manifest's checksums, on one core while the other compresses.
	sumsc := make(chan imageSums, 1)
	go func() { sumsc <- hashImageWritten(imgPath, b.lay, written) }()
	rel, err := release.Write(ctx, b.staging, b.imgName, written)
	b.sums = <-sumsc
	if err != nil {
		return "", err
	}
	if b.sums.err != nil {
		return "", fmt.Errorf("checksums of %s: %w", b.imgName, b.sums.err)
	}
	b.release = releaseFiles(rel)
	return fmt.Sprintf("%d MiB, disk signature %08x; %s: %d MiB mapped; %s: %d bytes", b.lay.DiskSize/layout.MiB, b.sig, rel.Bmap.Name, rel.Map.MappedBytes()/layout.MiB, rel.Zst.Name, rel.Zst.Size), nil
}

// assemble writes the disk image and returns the byte ranges it wrote: the
// blocks a flasher must write (NAME.bmap).
func (b *build) assemble(imgPath string) (written bmap.Extents, err error) {
	lay, name := b.lay, b.def.Name
	file, err := os.OpenFile(imgPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	f := &bmap.Recorder{W: file}
	defer func() { written = f.Written }()
	defer func() {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}()
	if err := file.Truncate(lay.DiskSize); err != nil {
		return nil, fmt.Errorf("size %s: %w", imgPath, err)
	}
	if err := mbr.Write(f, lay.MBR(b.sig), uint64(lay.DiskSize/mbr.SectorSize)); err != nil {
		return nil, fmt.Errorf("partition table: %w", err)
	}
	t := time.Unix(b.epoch, 0).UTC()
	for _, p := range lay.Parts {
		var werr error
		slot, inSlot := bootchain.SlotOf(p.Name)
		switch {
		case p.Name == layout.Bootsel:
			werr = writeFAT(f, p, LabelBootsel, volumeID(name, layout.Bootsel), t, b.boot.bootsel)
		case inSlot && p.Name == slot.Boot():
			werr = writeFAT(f, p, LabelBoot, volumeID(name, "boot"), t, b.boot.slots[slot])
		case inSlot && p.Name == slot.Root():
			werr = copyInto(f, p, b.rootImg)
		case p.Name == layout.Data:
			_, werr = f.WriteAt(make([]byte, min(dataWipe, p.Size)), p.Offset)
		}
		if werr != nil {
			return nil, fmt.Errorf("write %s: %w", p.Name, werr)
		}
	}
	return nil, file.Sync()
}

func writeFAT(w io.WriterAt, p layout.Part, label string, id uint32, t time.Time, files []fat.File) error {
	err := fat.Write(io.NewOffsetWriter(w, p.Offset), fat.Options{Size: p.Size, Label: label, VolumeID: id, Time: t}, files, nil)
	if err != nil {
		var total int64
		for _, f := range files {
			total += int64(len(f.Data))
		}
		return fmt.Errorf("%w (files total %d MiB, partition %d MiB: raise the partition size in the definition if needed)", err, total>>20, p.Size>>20)
	}
	return nil
}

func copyInto(f io.WriterAt, p layout.Part, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > p.Size {
		return fmt.Errorf("%d bytes do not fit %d: %w", st.Size(), p.Size, ErrTooLarge)
	}
	_, err = io.Copy(io.NewOffsetWriter(f, p.Offset), in)
	return err
}
