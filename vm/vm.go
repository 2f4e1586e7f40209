// Package vm boots a pibake image under qemu-system-aarch64 (the virt
// machine, TCG on x86 hosts) with the image's own U-Boot, the way a Pi's
// firmware would start it: the same boot script, the same A/B state file.
// Networking is user-mode and restricted: the guest reaches nothing but
// the loopback forwards it is given.
package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
)

// Forward maps a loopback port of the host to a port of the guest.
type Forward struct {
	HostPort, GuestPort int
}

// Options configure a boot.
type Options struct {
	Image    string
	Persist  bool // write to the image; default: a copy-on-write snapshot, the image is untouched
	MemoryMB int  // default 1024
	CPUs     int  // default 2
	Forwards []Forward
	// GuestFwd maps an address the guest connects to (10.0.2.100:8080) to
	// a loopback address of the host (127.0.0.1:port): the only way out.
	GuestFwd map[string]string
	Stdout   io.Writer // serial console
	Stdin    io.Reader // serial console input; nil for none
	Extra    []string  // extra qemu arguments
}

// UBoot extracts the U-Boot binary the image carries on bootsel (images
// for the qemu board keep u-boot-qemu's build there).
func UBoot(image string) ([]byte, error) {
	f, err := os.Open(image)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fsys, _, err := inspect.FAT(f, st.Size(), layout.Bootsel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	cfg, _ := fsys.ReadFile("config.txt")
	if len(cfg) > 0 {
		return nil, fmt.Errorf("%s was built for a Raspberry Pi board: build it with --board qemu to run it under QEMU", image)
	}
	ub, err := fsys.ReadFile("u-boot.bin")
	if err != nil {
		return nil, fmt.Errorf("%s: no u-boot.bin on bootsel: rebuild the image with this pibake: %w", image, err)
	}
	return ub, nil
}

// Command prepares the qemu command line; cleanup removes its temporary files.
func Command(ctx context.Context, opts Options) (*exec.Cmd, func(), error) {
	qemu, err := exec.LookPath("qemu-system-aarch64")
	if err != nil {
		return nil, nil, errors.New("qemu-system-aarch64 not found: install the Debian package qemu-system-arm (make deps does it)")
	}
	ub, err := UBoot(opts.Image)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "pibake-vm-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bios := filepath.Join(dir, "u-boot.bin")
	if err := os.WriteFile(bios, ub, 0o644); err != nil {
		cleanup()
		return nil, nil, err
	}
	mem, cpus := opts.MemoryMB, opts.CPUs
	if mem == 0 {
		mem = 1024
	}
	if cpus == 0 {
		cpus = 2
	}
	drive := "file=" + opts.Image + ",format=raw,if=virtio"
	if !opts.Persist {
		drive += ",snapshot=on"
	}
	nic := "user,restrict=on,model=virtio-net-pci"
	for _, f := range opts.Forwards {
		nic += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
	}
	guests := make([]string, 0, len(opts.GuestFwd))
	for g := range opts.GuestFwd {
		guests = append(guests, g)
	}
	sort.Strings(guests)
	for _, g := range guests {
		host := opts.GuestFwd[g]
		if !strings.HasPrefix(host, "127.") {
			cleanup()
			return nil, nil, fmt.Errorf("guest forward %s -> %s: only loopback addresses of the host are allowed", g, host)
		}
		nic += fmt.Sprintf(",guestfwd=tcp:%s-tcp:%s", g, host)
	}
	args := []string{
		"-M", "virt", "-cpu", "cortex-a72", "-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
		"-nographic", "-bios", bios, "-drive", drive, "-nic", nic,
	}
	args = append(args, opts.Extra...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir) // snapshot overlays go here
	cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stdout
	cmd.Stdin = opts.Stdin
	return cmd, cleanup, nil
}

// Run boots the image and waits until QEMU exits (the guest powered off,
// or ctx was cancelled).
func Run(ctx context.Context, opts Options) error {
	cmd, cleanup, err := Command(ctx, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("qemu: %w (%s)", err, strings.Join(cmd.Args, " "))
	}
	return ctx.Err()
}
