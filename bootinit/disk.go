package bootinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pibake/pibake/disk/mbr"
)

// Block is a partition as the kernel shows it under /sys/class/block.
type Block struct {
	Disk string // e.g. "vda", "mmcblk0"
	Name string // e.g. "vda5", "mmcblk0p5"
	Num  int
}

// ErrAmbiguous means more than one disk carries the image's disk
// signature: a second card or stick flashed with the same image. Linux
// cannot tell which of them the boot loader read (the kernel's own
// root=PARTUUID= is as ambiguous), so nothing picks one of them.
var ErrAmbiguous = errors.New("more than one disk carries the boot disk's signature")

// FindPartition looks for partition num on the one disk whose MBR
// signature is sig. sysBlock is /sys/class/block, dev is /dev (parameters
// for tests). Only disks with a device behind them count (not loop, ram,
// zram, device-mapper or md devices, which a boot loader cannot have
// read); two or more with the signature is ErrAmbiguous.
func FindPartition(sysBlock, dev string, sig uint32, num int) (Block, error) {
	entries, err := os.ReadDir(sysBlock)
	if err != nil {
		return Block{}, err
	}
	var found []string
	for _, e := range entries {
		dir := filepath.Join(sysBlock, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
			continue // a partition
		}
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue // no hardware behind it
		}
		if s, err := diskSignature(filepath.Join(dev, e.Name())); err == nil && s == sig {
			found = append(found, e.Name())
		}
	}
	switch {
	case len(found) == 0:
		return Block{}, fmt.Errorf("no partition %d on a disk with signature %08x (yet)", num, sig)
	case len(found) > 1:
		return Block{}, fmt.Errorf("%w %08x: %s; remove all but the one this system boots from", ErrAmbiguous, sig, strings.Join(found, ", "))
	}
	return Sibling(sysBlock, Block{Disk: found[0]}, num)
}

// Sibling returns partition num of b's disk: the kernel lists a disk's
// partitions as folders inside the disk's own (/sys/class/block/<disk>/
// <partition>/partition holds the number), so no name is guessed from
// another (nvme0n1 is a prefix of nvme0n10p1, sda of sdaa1).
func Sibling(sysBlock string, b Block, num int) (Block, error) {
	dir := filepath.Join(sysBlock, b.Disk)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Block{}, fmt.Errorf("disk %s: %w", b.Disk, err)
	}
	for _, e := range entries {
		pn, err := os.ReadFile(filepath.Join(dir, e.Name(), "partition"))
		if err != nil {
			continue // not a partition: queue, holders, power, ...
		}
		if n, err := strconv.Atoi(strings.TrimSpace(string(pn))); err == nil && n == num {
			return Block{Disk: b.Disk, Name: e.Name(), Num: n}, nil
		}
	}
	return Block{}, fmt.Errorf("disk %s has no partition %d", b.Disk, num)
}

// PartitionOf returns the partition whose device number is maj:min (the
// device a mounted filesystem lives on), from sysDevBlock
// (/sys/dev/block).
func PartitionOf(sysDevBlock string, maj, min uint32) (Block, error) {
	real, err := filepath.EvalSymlinks(filepath.Join(sysDevBlock, fmt.Sprintf("%d:%d", maj, min)))
	if err != nil {
		return Block{}, fmt.Errorf("block device %d:%d: %w", maj, min, err)
	}
	pn, err := os.ReadFile(filepath.Join(real, "partition"))
	if err != nil {
		return Block{}, fmt.Errorf("block device %d:%d (%s) is not a partition", maj, min, filepath.Base(real))
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(pn)))
	if err != nil {
		return Block{}, fmt.Errorf("block device %d:%d: partition %q", maj, min, pn)
	}
	return Block{Disk: filepath.Base(filepath.Dir(real)), Name: filepath.Base(real), Num: n}, nil
}

// DiskSignature reads the MBR disk signature of disk under dev (/dev).
func DiskSignature(dev, disk string) (uint32, error) {
	return diskSignature(filepath.Join(dev, disk))
}

func diskSignature(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [512]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, err
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return 0, fmt.Errorf("%s: no MBR", path)
	}
	return binary.LittleEndian.Uint32(b[440:]), nil
}

// GrowLast extends the last logical partition (and with it the extended
// partition) to the end of the disk, keeping its end on a 1 MiB boundary.
// It returns the partition's new start and length in sectors, and whether
// the table changed. Only the MBR and EBR sectors are written.
func GrowLast(d io.ReaderAt, w io.WriterAt, diskSectors uint64) (start, sectors uint64, changed bool, err error) {
	sig, entries, err := mbr.Read(d)
	if err != nil {
		return 0, 0, false, err
	}
	t := mbr.Table{DiskSignature: sig}
	for _, e := range entries {
		p := mbr.Partition{Type: e.Type, Start: e.Start, Sectors: e.Sectors, Bootable: e.Bootable}
		switch {
		case e.Extended:
			t.ExtendedStart = e.Start
		case e.Number <= 4:
			t.Primary = append(t.Primary, p)
		default:
			t.Logical = append(t.Logical, p)
		}
	}
	if len(t.Logical) == 0 {
		return 0, 0, false, fmt.Errorf("no logical partitions to grow")
	}
	last := &t.Logical[len(t.Logical)-1]
	end := diskSectors / 2048 * 2048 // 1 MiB boundary
	if end <= last.Start+last.Sectors {
		return last.Start, last.Sectors, false, nil
	}
	last.Sectors = end - last.Start
	if err := mbr.Write(w, t, diskSectors); err != nil {
		return 0, 0, false, err
	}
	return last.Start, last.Sectors, true, nil
}

// Ext4Size returns the size in bytes of the ext4 filesystem at the start of
// r, or 0 when there is none.
func Ext4Size(r io.ReaderAt) int64 {
	var sb [1024]byte
	if _, err := r.ReadAt(sb[:], 1024); err != nil {
		return 0
	}
	le := binary.LittleEndian
	if le.Uint16(sb[0x38:]) != 0xEF53 {
		return 0
	}
	blocks := uint64(le.Uint32(sb[4:]))
	if le.Uint32(sb[0x60:])&0x80 != 0 { // INCOMPAT_64BIT
		blocks |= uint64(le.Uint32(sb[0x150:])) << 32
	}
	return int64(blocks) << (10 + le.Uint32(sb[24:]))
}
