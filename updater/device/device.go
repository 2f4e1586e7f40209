// Package device finds the running system's A/B parts on a real device:
// the booted slot and the disk (from the kernel command line the boot
// script wrote), the slot partitions, and bootsel mounted where the U-Boot
// backend keeps its state file.
package device

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/bootinit"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/updater/install"
	"golang.org/x/sys/unix"
)

// BootselMount is where bootsel is mounted for the state file.
const BootselMount = "/run/pibake/bootsel"

// Device is the running system.
type Device struct {
	Booted    bootchain.Slot
	Signature uint32
	root      bootinit.Block
	sysBlock  string // /sys/class/block
}

// paths are where the kernel shows block devices (a fake tree in tests).
type paths struct{ sysBlock, sysDevBlock, dev string }

var host = paths{"/sys/class/block", "/sys/dev/block", "/dev"}

// Detect reads /proc/cmdline and finds the disk: the one the running root
// filesystem is mounted from (what pibake-init chose), checked against
// the command line's partition and disk signature.
func Detect() (*Device, error) {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		return nil, fmt.Errorf("stat /: %w", err)
	}
	return detect(host, string(raw), st.Dev)
}

// detect finds the disk of the root partition rootDev (the device number
// of /). A root on no partition (not started by pibake-init) falls back to
// the one disk with the command line's signature, as the init finds it;
// two such disks are refused (bootinit.ErrAmbiguous): the agent writes
// slots and the boot state, and must not write another card's.
func detect(p paths, cmdline string, rootDev uint64) (*Device, error) {
	cl, err := bootchain.ParseCmdline(cmdline)
	if err != nil {
		return nil, fmt.Errorf("not booted by pibake's boot chain: %w", err)
	}
	slot, err := bootchain.ParseSlot(string(cl.Slot))
	if err != nil {
		return nil, fmt.Errorf("kernel command line: pibake.slot: %w", err)
	}
	root, err := bootinit.PartitionOf(p.sysDevBlock, unix.Major(rootDev), unix.Minor(rootDev))
	if err != nil {
		if root, err = bootinit.FindPartition(p.sysBlock, p.dev, cl.Signature, cl.RootPart); err != nil {
			return nil, err
		}
	} else {
		sig, err := bootinit.DiskSignature(p.dev, root.Disk)
		if err != nil || sig != cl.Signature || root.Num != cl.RootPart {
			return nil, fmt.Errorf("/ is mounted from %s (partition %d of disk %s, signature %08x, %v); the kernel command line says partition %d of disk %08x",
				root.Name, root.Num, root.Disk, sig, err, cl.RootPart, cl.Signature)
		}
	}
	return &Device{Booted: slot, Signature: cl.Signature, root: root, sysBlock: p.sysBlock}, nil
}

func (d *Device) partition(num int) (string, error) {
	b, err := bootinit.Sibling(d.sysBlock, d.root, num)
	if err != nil {
		return "", err
	}
	return "/dev/" + b.Name, nil
}

// Slots opens a slot's boot and root partitions for writing; it refuses
// the running slot.
func (d *Device) Slots(s bootchain.Slot) (install.Target, install.Target, error) {
	if s == d.Booted {
		return nil, nil, fmt.Errorf("refusing to write slot %s: it is running", s)
	}
	nums := [2]int{s.BootPartition(), s.RootPartition()}
	var out [2]install.Target
	for i, n := range nums {
		dev, err := d.partition(n)
		if err != nil {
			return nil, nil, err
		}
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", dev, err)
		}
		size, err := f.Seek(0, 2)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		out[i] = install.Partition{F: f, Len: size}
	}
	return out[0], out[1], nil
}

// Open opens a slot's boot and root partitions read-only (the running
// slot's chunks are what a delta update reuses).
func (d *Device) Open(s bootchain.Slot) (boot, root install.Partition, err error) {
	var out [2]install.Partition
	for i, n := range [2]int{s.BootPartition(), s.RootPartition()} {
		dev, err := d.partition(n)
		if err != nil {
			return boot, root, err
		}
		f, err := os.Open(dev)
		if err != nil {
			if i == 1 {
				out[0].Close()
			}
			return boot, root, fmt.Errorf("open %s: %w", dev, err)
		}
		size, err := f.Seek(0, 2)
		if err != nil {
			f.Close()
			if i == 1 {
				out[0].Close()
			}
			return boot, root, fmt.Errorf("size of %s: %w", dev, err)
		}
		out[i] = install.Partition{F: f, Len: size}
	}
	return out[0], out[1], nil
}

// MountBootsel mounts partition 1 (FAT) for the boot state, once.
func (d *Device) MountBootsel() (string, error) {
	mounts, _ := os.ReadFile("/proc/mounts")
	if strings.Contains(string(mounts), " "+BootselMount+" ") {
		return BootselMount, nil
	}
	dev, err := d.partition(layout.Number(layout.Bootsel))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(BootselMount, 0o700); err != nil {
		return "", err
	}
	if err := unix.Mount(dev, BootselMount, "vfat", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_SYNCHRONOUS, "umask=077"); err != nil {
		return "", fmt.Errorf("mount bootsel %s: %w", dev, err)
	}
	return BootselMount, nil
}

// Reboot asks systemd for a clean reboot.
func Reboot() error {
	return exec.Command("systemctl", "reboot").Run()
}

// RebootWith asks systemd for a clean reboot whose reboot(2) call carries
// arg (e.g. the Pi firmware's "0 tryboot").
func RebootWith(arg string) error {
	return exec.Command("systemctl", "reboot", arg).Run()
}

// KernelRelease is the running kernel's release (uname -r).
func KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}
