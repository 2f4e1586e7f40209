// Package bootinittest lays out a fake /sys and /dev for the tests of
// what finds the boot disk (bootinit, updater/device), kept out of the
// production packages.
package bootinittest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"unicode"
)

// Disk is a disk of the fake tree: its MBR signature, its partitions'
// numbers, whether it is virtual (a loop device: no hardware behind it)
// and its device numbers (the disk is Major:MinorBase, partition n is
// Major:MinorBase+n).
type Disk struct {
	Signature uint32
	Parts     []int
	Virtual   bool
	Major     int
	MinorBase int
}

// Paths are the fake tree's /sys/class/block, /sys/dev/block and /dev.
type Paths struct {
	SysBlock, SysDevBlock, Dev string
}

// PartName is the kernel's name of partition n of disk: a p between
// them when the disk's name ends in a digit (mmcblk0p5, nvme0n1p5, sda5).
func PartName(disk string, n int) string {
	if unicode.IsDigit(rune(disk[len(disk)-1])) {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}

// Sys lays the disks out the way the kernel does: each disk a folder under
// /sys/devices (with a device link to its controller unless virtual), its
// partitions folders inside it holding their number in partition,
// symlinks to all of them in /sys/class/block and by device number in
// /sys/dev/block, and the disk's first sector (its MBR) in /dev.
func Sys(t testing.TB, disks map[string]Disk) Paths {
	t.Helper()
	root := t.TempDir()
	p := Paths{filepath.Join(root, "sys/class/block"), filepath.Join(root, "sys/dev/block"), filepath.Join(root, "dev")}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{p.SysBlock, p.SysDevBlock, p.Dev} {
		must(os.MkdirAll(d, 0o755))
	}
	for name, d := range disks {
		ctrl := filepath.Join(root, "sys/devices/platform", name+"-ctrl")
		dir := filepath.Join(ctrl, "block", name)
		if d.Virtual {
			dir = filepath.Join(root, "sys/devices/virtual/block", name)
		}
		must(os.MkdirAll(filepath.Join(dir, "queue"), 0o755))
		if !d.Virtual {
			must(os.Symlink(ctrl, filepath.Join(dir, "device")))
		}
		must(os.Symlink(dir, filepath.Join(p.SysBlock, name)))
		must(os.Symlink(dir, filepath.Join(p.SysDevBlock, fmt.Sprintf("%d:%d", d.Major, d.MinorBase))))
		sector := make([]byte, 512)
		binary.LittleEndian.PutUint32(sector[440:], d.Signature)
		sector[510], sector[511] = 0x55, 0xAA
		must(os.WriteFile(filepath.Join(p.Dev, name), sector, 0o644))
		for _, n := range d.Parts {
			part := filepath.Join(dir, PartName(name, n))
			must(os.MkdirAll(part, 0o755))
			must(os.WriteFile(filepath.Join(part, "partition"), fmt.Appendf(nil, "%d\n", n), 0o644))
			must(os.Symlink(part, filepath.Join(p.SysBlock, PartName(name, n))))
			must(os.Symlink(part, filepath.Join(p.SysDevBlock, fmt.Sprintf("%d:%d", d.Major, d.MinorBase+n))))
		}
	}
	return p
}
