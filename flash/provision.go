package flash

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/provision"
)

// ProvisionName is the provisioning file's name in the root of bootsel.
const ProvisionName = provision.FileName

// MaxProvisionSize bounds a provisioning file.
const MaxProvisionSize = 1 << 20

// ErrProvision means a provisioning file was refused.
var ErrProvision = errors.New("invalid provisioning file")

// CheckProvision checks a provisioning file before it is written, as the
// device will read it (provision.Validate: the fields, their syntax and
// values; users, owners and the time zone are checked against the image
// on first boot), so that `pibake flash --provision` and PutProvision
// never put a file on a card that the device would refuse.
func CheckProvision(data []byte) error {
	switch {
	case len(data) == 0:
		return fmt.Errorf("it is empty: %w", ErrProvision)
	case len(data) > MaxProvisionSize:
		return fmt.Errorf("it is %d bytes, at most %d are allowed: %w", len(data), MaxProvisionSize, ErrProvision)
	case !utf8.Valid(data):
		return fmt.Errorf("it is not UTF-8 text: %w", ErrProvision)
	}
	if err := provision.Validate(data); err != nil {
		return fmt.Errorf("%w: %w", ErrProvision, err)
	}
	return nil
}

// PutProvision places data as ProvisionName in the root directory of the
// bootsel partition (partition 1) of the pibake disk in rw (a device or
// an image file of diskSize bytes), replacing an earlier one, and reads
// it back. The e2e harness uses it on a copy of an image before booting.
func PutProvision(rw fat.ReadWriterAt, diskSize int64, data []byte, t time.Time) error {
	if err := CheckProvision(data); err != nil {
		return fmt.Errorf("provision: %w", err)
	}
	return PutBootselFile(rw, diskSize, ProvisionName, data, t)
}

// PutBootselFile places data as name in the root directory of the bootsel
// partition of the pibake disk in rw, replacing an earlier file of that
// name, and reads it back (e.g. Raspberry Pi Imager's cloud-init files,
// which the device reads there too).
func PutBootselFile(rw fat.ReadWriterAt, diskSize int64, name string, data []byte, t time.Time) error {
	_, entries, err := mbr.Read(rw)
	if err != nil {
		return fmt.Errorf("provision: partition table: %w", err)
	}
	num := layout.Number(layout.Bootsel)
	var part *mbr.Entry
	for i := range entries {
		if entries[i].Number == num {
			part = &entries[i]
		}
	}
	if part == nil {
		return fmt.Errorf("provision: no partition %d (%s): not a pibake disk", num, layout.Bootsel)
	}
	off, size := int64(part.Start)*mbr.SectorSize, int64(part.Sectors)*mbr.SectorSize
	if off+size > diskSize {
		return fmt.Errorf("provision: partition %d ends at byte %d, past the disk's %d", num, off+size, diskSize)
	}
	vol := &offsetRW{rw: rw, off: off}
	if err := fat.PutFile(vol, size, name, data, t); err != nil {
		return fmt.Errorf("provision: %s on partition %d: %w", name, num, err)
	}
	fsys, err := fat.Open(vol, size)
	if err != nil {
		return fmt.Errorf("provision: reading back: %w", err)
	}
	back, err := fsys.ReadFile(name)
	if err != nil || !bytes.Equal(back, data) {
		return fmt.Errorf("provision: %s reads back as %d bytes (%v), %d were written", name, len(back), err, len(data))
	}
	return nil
}

// offsetRW is a partition inside a disk.
type offsetRW struct {
	rw  fat.ReadWriterAt
	off int64
}

func (o *offsetRW) ReadAt(p []byte, off int64) (int, error)  { return o.rw.ReadAt(p, o.off+off) }
func (o *offsetRW) WriteAt(p []byte, off int64) (int, error) { return o.rw.WriteAt(p, o.off+off) }
