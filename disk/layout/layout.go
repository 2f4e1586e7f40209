// Package layout is the single declaration of pibake's A/B disk layout: an
// MBR disk (every Pi firmware boots it) with three primary FAT32
// partitions, an extended partition and three logical ones:
//
//	p1 bootsel  FAT32     what the Pi firmware reads first (firmware, U-Boot, boot script, slot state)
//	p2 boot-a   FAT32     kernel, DTBs, cmdline of slot A
//	p3 boot-b   FAT32     the same for slot B
//	p4 (extended)
//	p5 root-a   squashfs  read-only root filesystem of slot A
//	p6 root-b   squashfs  the same for slot B
//	p7 data     ext4      persistent data; created and grown on first boot
//
// Every partition starts on a 4 MiB boundary (SD card erase blocks); each
// logical partition's EBR sits 1 MiB before it. Which partitions make up
// slot A and slot B is bootchain's (the slot and its partitions). Both the
// builder and the device agent read this package, so it imports nothing of
// either.
package layout

import (
	"fmt"

	"github.com/pibake/pibake/disk/mbr"
)

const (
	MiB = 1 << 20
	// Align is the boundary every partition starts on.
	Align = 4 * MiB
	// EBRGap is the distance between a logical partition's EBR and its data.
	EBRGap = 1 * MiB
)

// Partition names.
const (
	Bootsel = "bootsel"
	BootA   = "boot-a"
	BootB   = "boot-b"
	RootA   = "root-a"
	RootB   = "root-b"
	Data    = "data"
)

// Where the running system mounts the data partition, and the folder of
// it that belongs to pibake (the update agent's state, provisioning's
// records, the overlays' upper layers, /etc's among them).
const (
	DataMount = "/data"
	StateDir  = DataMount + "/pibake"
)

// Spec declares one partition of the layout.
type Spec struct {
	Number  int    // Linux partition number
	Name    string // pibake's name for it
	Type    byte   // MBR type
	FS      string // filesystem written at build time ("" for none)
	Logical bool
}

// Table is the layout, in disk order.
var Table = []Spec{
	{1, Bootsel, 0x0C, "vfat", false},
	{2, BootA, 0x0C, "vfat", false},
	{3, BootB, 0x0C, "vfat", false},
	{5, RootA, 0x83, "squashfs", true},
	{6, RootB, 0x83, "squashfs", true},
	{7, Data, 0x83, "ext4", true},
}

// Number is the Linux partition number of a partition of Table; it
// panics for a name that is not in Table (a constant of this package
// always is).
func Number(name string) int {
	sp, ok := Find(name)
	if !ok {
		panic("layout: no partition " + name)
	}
	return sp.Number
}

// Find returns the partition of Table with the given name.
func Find(name string) (Spec, bool) {
	for _, s := range Table {
		if s.Name == name {
			return s, true
		}
	}
	return Spec{}, false
}

// Sizes are the requested sizes in bytes; each is rounded up to Align.
type Sizes struct {
	Bootsel, Boot, Root, Data int64
}

func (s Sizes) of(name string) int64 {
	switch name {
	case Bootsel:
		return s.Bootsel
	case BootA, BootB:
		return s.Boot
	case RootA, RootB:
		return s.Root
	default:
		return s.Data
	}
}

// Part is a partition placed on the disk.
type Part struct {
	Spec
	Offset int64 // bytes from the start of the disk
	Size   int64 // bytes
}

// Layout is the computed placement of every partition.
type Layout struct {
	Parts         []Part
	ExtendedStart int64 // byte offset of the first EBR
	DiskSize      int64
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// Compute places the partitions of Table for the given sizes.
func Compute(s Sizes) (Layout, error) {
	var l Layout
	off := int64(Align)
	for _, sp := range Table {
		size := s.of(sp.Name)
		if size <= 0 {
			return Layout{}, fmt.Errorf("layout: partition %s has no size", sp.Name)
		}
		size = roundUp(size, Align)
		if sp.Logical {
			// Leave room for the EBR: one alignment unit before the data.
			off += Align
			if l.ExtendedStart == 0 {
				l.ExtendedStart = off - EBRGap
			}
		}
		l.Parts = append(l.Parts, Part{Spec: sp, Offset: off, Size: size})
		off += size
	}
	l.DiskSize = off
	return l, nil
}

// Part returns the partition with the given name.
func (l Layout) Part(name string) (Part, bool) {
	for _, p := range l.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// MBR returns the partition table to write for this layout.
func (l Layout) MBR(signature uint32) mbr.Table {
	t := mbr.Table{DiskSignature: signature, ExtendedStart: uint64(l.ExtendedStart / mbr.SectorSize)}
	for _, p := range l.Parts {
		mp := mbr.Partition{Type: p.Type, Start: uint64(p.Offset / mbr.SectorSize), Sectors: uint64(p.Size / mbr.SectorSize), Bootable: p.Number == 1}
		if p.Logical {
			t.Logical = append(t.Logical, mp)
		} else {
			t.Primary = append(t.Primary, mp)
		}
	}
	return t
}

// FromMBR recognises the layout in a partition table read from a disk (by
// the device agent or `pibake inspect`): it checks every partition of Table
// is there with the right type and returns their placement.
func FromMBR(entries []mbr.Entry, diskSize int64) (Layout, error) {
	byNum := map[int]mbr.Entry{}
	for _, e := range entries {
		byNum[e.Number] = e
	}
	var l Layout
	for _, sp := range Table {
		e, ok := byNum[sp.Number]
		if !ok {
			return Layout{}, fmt.Errorf("layout: no partition %d (%s): not a pibake disk", sp.Number, sp.Name)
		}
		if e.Type != sp.Type {
			return Layout{}, fmt.Errorf("layout: partition %d (%s) has type 0x%02x, want 0x%02x: not a pibake disk", sp.Number, sp.Name, e.Type, sp.Type)
		}
		l.Parts = append(l.Parts, Part{Spec: sp, Offset: int64(e.Start) * mbr.SectorSize, Size: int64(e.Sectors) * mbr.SectorSize})
	}
	for _, e := range entries {
		if e.Extended {
			l.ExtendedStart = int64(e.Start) * mbr.SectorSize
		}
	}
	l.DiskSize = diskSize
	return l, nil
}
