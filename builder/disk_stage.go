package builder

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
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

// assemble writes the disk image and returns the byte ranges it wrote: the
// blocks a flasher must write (NAME.bmap).
func assemble(imgPath string, lay layout.Layout, sig uint32, def *imagedef.Definition, bf *bootSet, rootImg string, epoch int64) (written bmap.Extents, err error) {
	file, err := os.OpenFile(imgPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	f := &bmap.Recorder{W: file}
	defer func() { written = f.Written }()
	defer func() {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}()
	if err := file.Truncate(lay.DiskSize); err != nil {
		return nil, fmt.Errorf("disk: size %s: %w", imgPath, err)
	}
	if err := mbr.Write(f, lay.MBR(sig), uint64(lay.DiskSize/mbr.SectorSize)); err != nil {
		return nil, fmt.Errorf("disk: partition table: %w", err)
	}
	t := time.Unix(epoch, 0).UTC()
	for _, p := range lay.Parts {
		var werr error
		slot, inSlot := bootchain.SlotOf(p.Name)
		switch {
		case p.Name == layout.Bootsel:
			werr = writeFAT(f, p, LabelBootsel, volumeID(def.Name, layout.Bootsel), t, bf.bootsel)
		case inSlot && p.Name == slot.Boot():
			werr = writeFAT(f, p, LabelBoot, volumeID(def.Name, "boot"), t, bf.slots[slot])
		case inSlot && p.Name == slot.Root():
			werr = copyInto(f, p, rootImg)
		case p.Name == layout.Data:
			_, werr = f.WriteAt(make([]byte, min(dataWipe, p.Size)), p.Offset)
		}
		if werr != nil {
			return nil, fmt.Errorf("disk: write %s: %w", p.Name, werr)
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
