package builder

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pibake/pibake/builder/imagedef"
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

func assemble(imgPath string, lay layout.Layout, sig uint32, def *imagedef.Definition, bf *bootSet, rootImg string, epoch int64) (err error) {
	f, err := os.OpenFile(imgPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(lay.DiskSize); err != nil {
		return fmt.Errorf("disk: size %s: %w", imgPath, err)
	}
	if err := mbr.Write(f, lay.MBR(sig), uint64(lay.DiskSize/mbr.SectorSize)); err != nil {
		return fmt.Errorf("disk: partition table: %w", err)
	}
	t := time.Unix(epoch, 0).UTC()
	for _, p := range lay.Parts {
		var werr error
		switch p.Name {
		case layout.Bootsel:
			werr = writeFAT(f, p, LabelBootsel, volumeID(def.Name, layout.Bootsel), t, bf.bootsel)
		case layout.BootA:
			werr = writeFAT(f, p, LabelBoot, volumeID(def.Name, "boot"), t, bf.slotA)
		case layout.BootB:
			werr = writeFAT(f, p, LabelBoot, volumeID(def.Name, "boot"), t, bf.slotB)
		case layout.RootA, layout.RootB:
			werr = copyInto(f, p, rootImg)
		}
		if werr != nil {
			return fmt.Errorf("disk: write %s: %w", p.Name, werr)
		}
	}
	return f.Sync()
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

func copyInto(f *os.File, p layout.Part, src string) error {
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
