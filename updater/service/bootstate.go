package service

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/bootinit"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/device"
)

// runningDevice finds the booted slot and bootsel without mounting it:
// the service's mount if there is one, else the partition itself.
func runningDevice() (Device, error) {
	dev, err := device.Detect()
	if err != nil {
		return Device{}, err
	}
	d := Device{Booted: dev.Booted}
	if mounts, err := os.ReadFile("/proc/mounts"); err == nil && strings.Contains(string(mounts), " "+device.BootselMount+" ") {
		d.Mounted = device.BootselMount
		return d, nil
	}
	if b, err := bootinit.FindPartition("/sys/class/block", "/dev", dev.Signature, layout.Number(layout.Bootsel)); err == nil {
		d.Bootsel = "/dev/" + b.Name
	}
	return d, nil
}

// bootState is one line on the state chain c keeps on bootsel, "" when it
// cannot be read. Through the service's mount it is the boot loader's own
// description; otherwise the FAT is read from the partition, opened
// read-only: bytes the kernel has not mounted are read, never written.
// (Reading the partition under a mounted FAT could see blocks the mount
// has since rewritten, so a mount is always preferred.)
func (d Device) bootState(c bootchain.Chain) string {
	if d.Mounted != "" {
		return bootloader.Describe(c, d.Mounted)
	}
	f, err := os.Open(d.Bootsel)
	if err != nil {
		return ""
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return ""
	}
	vol, err := fat.Open(f, size)
	if err != nil {
		return ""
	}
	return describe(c, vol.ReadFile)
}

// describe is bootloader.Describe over any reader of bootsel's files: the
// state file the chain's boot would use, as the boot loader's backends
// read it (TestDescribeAsTheBootLoader holds the two together).
func describe(c bootchain.Chain, read func(name string) ([]byte, error)) string {
	if c == bootchain.Tryboot {
		s, ok := trybootCommitted(read)
		if !ok {
			return ""
		}
		return fmt.Sprintf("tryboot: slot %s committed (%s)", s, bootchain.AutobootFile)
	}
	st, ok := ubootState(read)
	if !ok {
		return ""
	}
	return strings.ReplaceAll(strings.TrimSpace(string(st.Marshal())), "\n", " ")
}

// ubootState: the state file if it holds all of the state, else the
// agent's copy, else the defaults.
func ubootState(read func(string) ([]byte, error)) (bootchain.State, bool) {
	for _, name := range []string{bootchain.StateFile, bootchain.AgentStateFile} {
		data, err := read(name)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return bootchain.State{}, false
		}
		if st, ok := bootchain.ParseComplete(data); ok {
			return st, true
		}
	}
	st, _ := bootchain.ParseState(nil)
	return st, true
}

// trybootCommitted: the slot autoboot.txt boots normally, slot a if there
// is none (what the build writes).
func trybootCommitted(read func(string) ([]byte, error)) (bootchain.Slot, bool) {
	data, err := read(bootchain.AutobootFile)
	if errors.Is(err, fs.ErrNotExist) {
		return bootchain.A, true
	}
	if err != nil {
		return "", false
	}
	normal, _, enabled, err := bootchain.ParseAutoboot(data)
	if err != nil || !enabled {
		return "", false
	}
	return bootchain.SlotBootingFrom(normal)
}

// readBootsel reads a file of bootsel (a slash-separated path): through the
// service's mount, or from the partition opened read-only.
func (d Device) readBootsel(name string) ([]byte, error) {
	if d.Mounted != "" {
		return os.ReadFile(filepath.Join(d.Mounted, filepath.FromSlash(name)))
	}
	if d.Bootsel == "" {
		return nil, errors.New("bootsel not found")
	}
	f, err := os.Open(d.Bootsel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	vol, err := fat.Open(f, size)
	if err != nil {
		return nil, err
	}
	return vol.ReadFile(name)
}
