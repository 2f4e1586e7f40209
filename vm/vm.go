// Package vm boots a pibake image under qemu-system-aarch64 (TCG on x86
// hosts) with the image's own U-Boot: a qemu-board image on the virt
// machine, a pi3 or pi4 image on QEMU's model of that Pi (raspi3b,
// raspi4b), given the board's own device tree the way the Pi firmware
// would. The same boot script, the same A/B state file. On virt,
// networking is user-mode and restricted: the guest reaches nothing but
// the loopback forwards it is given; the Pi machines get no network.
package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/fdt"
	"github.com/pibake/pibake/internal/cachedir"
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
	// GuestCmd maps an address the guest connects to to a shell command
	// QEMU starts for each connection, the connection being its stdin and
	// stdout (a relay to a loopback port, where one connection per guest
	// connection matters: GuestFwd's chardev is one stream for them all).
	GuestCmd map[string]string
	Stdout   io.Writer // serial console
	Stdin    io.Reader // serial console input; nil for none
	Extra    []string  // extra qemu arguments
	// Started, when set, is called by Run with QEMU's process ID once it
	// runs (for a test that looks at the process while the guest is
	// silent).
	Started func(pid int)
	// NoNetwork gives a virt guest no network device at all (a site whose
	// network is down, a cable out); the Pi machines never get one.
	NoNetwork bool
	// EditDTB changes the copy of the device tree QEMU hands a Pi board's
	// U-Boot (never the image): for parts of the board QEMU does not
	// emulate.
	EditDTB func(*fdt.Tree) error
}

// Target is what an image needs from QEMU: the board it was built for,
// its U-Boot and, on a Pi board, the device tree the Pi firmware would
// hand U-Boot.
type Target struct {
	Board firmware.Board
	UBoot []byte
	DTB   []byte // nil on the qemu board: QEMU makes its own
}

// ReadTarget reads the board, U-Boot and device tree from an image:
// the board from slot A's pibake.json, the rest from bootsel.
func ReadTarget(image string) (*Target, error) {
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
	slot, _, err := inspect.FAT(f, st.Size(), layout.BootA)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	raw, err := slot.ReadFile(inspect.SlotInfoFile)
	if err != nil {
		return nil, fmt.Errorf("%s: slot a has no %s: %w", image, inspect.SlotInfoFile, err)
	}
	var info struct {
		Board, Bootloader string
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("%s: slot a's %s: %w", image, inspect.SlotInfoFile, err)
	}
	board, err := firmware.Lookup(info.Board)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", image, err)
	}
	if bootchain.Chain(info.Bootloader) == bootchain.Tryboot {
		return nil, fmt.Errorf("%s uses the tryboot chain, which only the Pi firmware runs: QEMU boots U-Boot-chain images", image)
	}
	t := &Target{Board: board}
	if t.UBoot, err = fsys.ReadFile("u-boot.bin"); err != nil {
		return nil, fmt.Errorf("%s: no u-boot.bin on bootsel: rebuild the image with this pibake: %w", image, err)
	}
	if !board.Emulated {
		if t.DTB, err = fsys.ReadFile(board.QEMUDTB); err != nil {
			return nil, fmt.Errorf("%s: board %s, no %s on bootsel: %w", image, board.Name, board.QEMUDTB, err)
		}
	}
	return t, nil
}

// QEMUFor returns the qemu-system-aarch64 that emulates the machine: the
// host's for virt; for the Raspberry Pi machines the one scripts/deps.sh
// provides in the cache (trixie's QEMU, as raspi4b needs QEMU 9 or newer,
// or the host's when it has raspi4b).
func QEMUFor(machine string) (string, error) {
	if machine == "virt" {
		q, err := exec.LookPath("qemu-system-aarch64")
		if err != nil {
			return "", errors.New("qemu-system-aarch64 not found: install the Debian package qemu-system-arm (make deps does it)")
		}
		return q, nil
	}
	dir, err := cachedir.Default()
	if err != nil {
		return "", err
	}
	q := filepath.Join(dir, "qemu-pi", "qemu-system-aarch64")
	if st, err := os.Stat(q); err != nil || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("no QEMU for the %s machine at %s: run 'make deps' (scripts/qemu-pi.sh installs it)", machine, q)
	}
	return q, nil
}

// Command prepares the qemu command line; cleanup removes its temporary files.
func Command(ctx context.Context, opts Options) (*exec.Cmd, func(), error) {
	tg, err := ReadTarget(opts.Image)
	if err != nil {
		return nil, nil, err
	}
	machine := tg.Board.QEMUMachine
	qemu, err := QEMUFor(machine)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "pibake-vm-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	fail := func(err error) (*exec.Cmd, func(), error) {
		cleanup()
		return nil, nil, err
	}
	ub := filepath.Join(dir, "u-boot.bin")
	if err := os.WriteFile(ub, tg.UBoot, 0o644); err != nil {
		return fail(err)
	}
	drive := "file=" + opts.Image + ",format=raw"
	if !opts.Persist {
		drive += ",snapshot=on"
	}
	var args []string
	if machine == "virt" {
		mem, cpus := opts.MemoryMB, opts.CPUs
		if mem == 0 {
			mem = 1024
		}
		if cpus == 0 {
			cpus = 2
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
				return fail(fmt.Errorf("guest forward %s -> %s: only loopback addresses of the host are allowed", g, host))
			}
			nic += fmt.Sprintf(",guestfwd=tcp:%s-tcp:%s", g, host)
		}
		cmds := make([]string, 0, len(opts.GuestCmd))
		for g := range opts.GuestCmd {
			cmds = append(cmds, g)
		}
		sort.Strings(cmds)
		for _, g := range cmds {
			c := opts.GuestCmd[g]
			if strings.ContainsAny(c, ",\n") {
				return fail(fmt.Errorf("guest command for %s: %q has a comma or newline, which QEMU's option syntax cannot carry", g, c))
			}
			nic += fmt.Sprintf(",guestfwd=tcp:%s-cmd:%s", g, c)
		}
		args = []string{
			"-M", "virt", "-cpu", "cortex-a72", "-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(mem),
			"-nographic", "-bios", ub, "-drive", drive + ",if=virtio", "-nic", nic,
		}
		if opts.NoNetwork {
			if len(opts.Forwards)+len(opts.GuestFwd)+len(opts.GuestCmd) > 0 {
				return fail(errors.New("a guest without a network device cannot have forwards"))
			}
			args[len(args)-1] = "none"
		}
	} else {
		pi, err := piArgs(opts, tg, machine, dir, ub, drive)
		if err != nil {
			return fail(err)
		}
		args = pi
	}
	args = append(args, opts.Extra...)
	cmd := exec.CommandContext(ctx, qemu, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir) // snapshot overlays go here
	cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stdout
	cmd.Stdin = opts.Stdin
	return cmd, cleanup, nil
}

// piArgs boots a Pi board's image on QEMU's model of its SoC: QEMU loads
// the image's own u-boot.bin where the Pi firmware would and hands it the
// board's device tree from bootsel, the SD card is the image, and the
// console is the second UART (the mini UART, ttyS1), as config.txt's
// enable_uart gives on hardware. These machines have no network QEMU can
// restrict (no GENET on raspi4b; USB networking on raspi3b only), so the
// guest gets none.
func piArgs(opts Options, tg *Target, machine, dir, ub, drive string) ([]string, error) {
	if len(opts.Forwards) > 0 || len(opts.GuestFwd) > 0 || len(opts.GuestCmd) > 0 {
		return nil, fmt.Errorf("board %s (QEMU %s): port forwards need a network, which pibake does not give emulated Pi machines", tg.Board.Name, machine)
	}
	st, err := os.Stat(opts.Image)
	if err != nil {
		return nil, err
	}
	if n := st.Size(); n&(n-1) != 0 {
		next := int64(1)
		for next < n {
			next <<= 1
		}
		return nil, fmt.Errorf("%s is %d bytes: QEMU's SD card must be a power of two in size; grow a copy first (truncate -s %d)", opts.Image, n, next)
	}
	dtb := tg.DTB
	if opts.EditDTB != nil {
		tree, err := fdt.Parse(dtb)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tg.Board.QEMUDTB, err)
		}
		if err := opts.EditDTB(tree); err != nil {
			return nil, fmt.Errorf("edit %s: %w", tg.Board.QEMUDTB, err)
		}
		dtb = tree.Encode()
	}
	dtbPath := filepath.Join(dir, tg.Board.QEMUDTB)
	if err := os.WriteFile(dtbPath, dtb, 0o644); err != nil {
		return nil, err
	}
	mem := map[string]string{"raspi3b": "1G", "raspi4b": "2G"}[machine]
	if opts.MemoryMB != 0 {
		mem = strconv.Itoa(opts.MemoryMB)
	}
	args := []string{"-M", machine, "-m", mem, "-kernel", ub, "-dtb", dtbPath,
		"-display", "none", "-monitor", "none", "-nic", "none",
		// Both UARTs (the PL011, then the mini UART) and QEMU's monitor
		// share the terminal: whichever the board's console is, it shows.
		"-chardev", "stdio,id=pibake-console,mux=on", "-serial", "chardev:pibake-console", "-serial", "chardev:pibake-console", "-mon", "chardev=pibake-console,mode=readline"}
	if machine == "raspi4b" {
		// -drive if=sd would land on the Wi-Fi SDIO controller; the SD
		// slot is emmc2. QEMU has an empty default card called sd0.
		args = append(args, "-drive", drive+",if=none,id=pibake-sd", "-device", "sd-card,drive=pibake-sd,bus=/generic-sdhci/sd-bus")
	} else {
		args = append(args, "-drive", drive+",if=sd")
	}
	return args, nil
}

// Run boots the image and waits until QEMU exits (the guest powered off,
// or ctx was cancelled).
func Run(ctx context.Context, opts Options) error {
	cmd, cleanup, err := Command(ctx, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	err = cmd.Start()
	if err == nil {
		if opts.Started != nil {
			opts.Started(cmd.Process.Pid)
		}
		err = cmd.Wait()
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("qemu: %w (%s)", err, strings.Join(cmd.Args, " "))
	}
	return ctx.Err()
}
