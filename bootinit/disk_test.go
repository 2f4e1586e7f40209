package bootinit

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/bootinit/bootinittest"
)

// TestPartitionsByTheKernelsTree: a partition is found by its number
// among its own disk's partitions, never by a name that starts like the
// disk's (nvme0n1 is a prefix of nvme0n10p7 and lists after it).
func TestPartitionsByTheKernelsTree(t *testing.T) {
	const ours, other = 0x1cf9920d, 0x5eed5eed
	all := []int{1, 2, 3, 5, 6, 7}
	p := bootinittest.Sys(t, map[string]bootinittest.Disk{
		"nvme0n1":  {Signature: ours, Parts: all, Major: 259},
		"nvme0n10": {Signature: other, Parts: all, Major: 259, MinorBase: 16},
		"sda":      {Signature: other, Parts: all, Major: 8},
		"sdaa":     {Signature: other, Parts: all, Major: 65, MinorBase: 160},
	})
	sys, devBlock, dev := p.SysBlock, p.SysDevBlock, p.Dev
	root, err := FindPartition(sys, dev, ours, 5)
	if err != nil || root != (Block{Disk: "nvme0n1", Name: "nvme0n1p5", Num: 5}) {
		t.Fatalf("root: %+v, %v", root, err)
	}
	for _, n := range []int{1, 7} {
		if b, err := Sibling(sys, root, n); err != nil || b.Disk != "nvme0n1" || b.Name != fmt.Sprintf("nvme0n1p%d", n) {
			t.Errorf("partition %d of nvme0n1: %+v, %v", n, b, err)
		}
	}
	if b, err := Sibling(sys, Block{Disk: "sda"}, 7); err != nil || b.Name != "sda7" {
		t.Errorf("partition 7 of sda: %+v, %v", b, err)
	}
	if b, err := Sibling(sys, root, 4); err == nil {
		t.Errorf("partition 4 (the extended one, not listed): %+v", b)
	}
	if b, err := PartitionOf(devBlock, 259, 5); err != nil || b != root {
		t.Errorf("device 259:5: %+v, %v", b, err)
	}
	if b, err := PartitionOf(devBlock, 259, 16); err == nil {
		t.Errorf("device 259:16 is a whole disk, taken for %+v", b)
	}
}

// TestSameSignatureTwice: a second disk flashed with the same image is not
// silently taken for the boot disk; a loop device of the image is no disk
// the boot loader read.
func TestSameSignatureTwice(t *testing.T) {
	const sig = 0x1cf9920d
	p := bootinittest.Sys(t, map[string]bootinittest.Disk{
		"mmcblk0": {Signature: sig, Parts: []int{1, 5, 7}, Major: 179},
		"sda":     {Signature: sig, Parts: []int{1, 5, 7}, Major: 8},
	})
	b, err := FindPartition(p.SysBlock, p.Dev, sig, 5)
	if !errors.Is(err, ErrAmbiguous) || !strings.Contains(err.Error(), "mmcblk0, sda") {
		t.Errorf("two disks with one signature: %+v, %v; want ErrAmbiguous naming both", b, err)
	}
	p = bootinittest.Sys(t, map[string]bootinittest.Disk{
		"mmcblk0": {Signature: sig, Parts: []int{1, 5, 7}, Major: 179},
		"loop0":   {Signature: sig, Parts: []int{1, 5, 7}, Major: 7, Virtual: true},
	})
	if b, err := FindPartition(p.SysBlock, p.Dev, sig, 5); err != nil || b.Name != "mmcblk0p5" {
		t.Errorf("a disk and a loop device of the image: %+v, %v", b, err)
	}
}

// TestWaitRoot: a missing disk is waited for 30 s; two disks with the
// signature are waited for, however long, with the reason on the console
// (a critical message, which quiet does not hide) every 10 s.
func TestWaitRoot(t *testing.T) {
	var clock time.Time
	now := func() time.Time { return clock }
	sleep := func(d time.Duration) { clock = clock.Add(d) }
	ambiguous := fmt.Errorf("%w 1cf9920d: mmcblk0, sda", ErrAmbiguous)
	calls := 0
	find := func() (Block, error) {
		calls++
		switch {
		case clock.Before(time.Unix(0, 0).Add(5 * time.Minute)):
			return Block{}, ambiguous
		case calls%2 == 0:
			return Block{}, errors.New("no partition 5 (yet)") // the other disk being removed
		}
		return Block{Disk: "mmcblk0", Name: "mmcblk0p5", Num: 5}, nil
	}
	clock = time.Unix(0, 0)
	var out strings.Builder
	b, err := waitRoot(initLog{w: &out, kmsg: true}, find, now, sleep)
	if err != nil || b.Name != "mmcblk0p5" {
		t.Fatalf("after the second disk went: %+v, %v", b, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 30 || !strings.HasPrefix(lines[0], "<2>pibake-init: cannot tell which disk") || !strings.Contains(lines[0], "mmcblk0, sda") {
		t.Errorf("%d lines over 5 minutes, the first %q", len(lines), lines[0])
	}
	clock = time.Unix(0, 0)
	_, err = waitRoot(initLog{w: &out}, func() (Block, error) { return Block{}, errors.New("no disk") }, now, sleep)
	if err == nil || clock.Sub(time.Unix(0, 0)) > 31*time.Second {
		t.Errorf("no disk: %v after %s", err, clock.Sub(time.Unix(0, 0)))
	}
}
