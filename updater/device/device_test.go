package device

import (
	"errors"
	"strings"
	"testing"

	"github.com/pibake/pibake/bootinit"
	"github.com/pibake/pibake/bootinit/bootinittest"
	"golang.org/x/sys/unix"
)

// TestDetectTheRunningDisk: the agent writes the disk the running root is
// mounted from, even when another disk carries the same image (a second
// card flashed with it) or a name that starts the same (nvme0n10 after
// nvme0n1); with no root partition to go by, it refuses two such disks.
func TestDetectTheRunningDisk(t *testing.T) {
	const sig = 0x1cf9920d
	all := []int{1, 2, 3, 5, 6, 7}
	p := bootinittest.Sys(t, map[string]bootinittest.Disk{
		"nvme0n1":  {Signature: sig, Parts: all, Major: 259},
		"nvme0n10": {Signature: sig, Parts: all, Major: 259, MinorBase: 16},
		"mmcblk0":  {Signature: 0x5eed5eed, Parts: all, Major: 179},
	})
	paths := paths{p.SysBlock, p.SysDevBlock, p.Dev}
	cmdline := "console=ttyS1 root=PARTUUID=1cf9920d-05 pibake.slot=a"
	for _, c := range []struct {
		root       uint64
		disk, data string
	}{{unix.Mkdev(259, 5), "nvme0n1", "/dev/nvme0n1p7"}, {unix.Mkdev(259, 21), "nvme0n10", "/dev/nvme0n10p7"}} {
		d, err := detect(paths, cmdline, c.root)
		if err != nil || d.root.Disk != c.disk {
			t.Fatalf("/ on %d:%d: %+v, %v", unix.Major(c.root), unix.Minor(c.root), d, err)
		}
		for n, want := range map[int]string{7: c.data, 1: strings.TrimSuffix(c.data, "7") + "1"} {
			if got, err := d.partition(n); err != nil || got != want {
				t.Errorf("/ on %s: partition %d is %s (%v), want %s", c.disk, n, got, err, want)
			}
		}
	}
	// / on partition 6 of the disk, or on another disk, while the
	// command line says partition 5 of 1cf9920d.
	for _, root := range []uint64{unix.Mkdev(259, 6), unix.Mkdev(179, 5)} {
		if d, err := detect(paths, cmdline, root); err == nil {
			t.Errorf("/ on %d:%d taken for the booted root: %+v", unix.Major(root), unix.Minor(root), d)
		}
	}
	// / on no partition: the disk by its signature, of which there are two.
	if d, err := detect(paths, cmdline, unix.Mkdev(0, 31)); !errors.Is(err, bootinit.ErrAmbiguous) {
		t.Errorf("/ on a tmpfs, two disks with the signature: %+v, %v", d, err)
	}
	if d, err := detect(paths, "console=ttyS1 root=PARTUUID=5eed5eed-05 pibake.slot=b", unix.Mkdev(0, 31)); err != nil || d.root.Name != "mmcblk0p5" || d.Booted != "b" {
		t.Errorf("/ on a tmpfs, one disk with the signature: %+v, %v", d, err)
	}
}
