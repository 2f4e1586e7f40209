// Package firmware knows the Raspberry Pi boot chain per board: which
// firmware files, device trees and U-Boot build each board needs, and the
// config.txt and cmdline.txt pibake writes for it. It only selects and
// generates files; the builder puts them on the FAT partitions.
package firmware

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/pibake/pibake/firmware/uboot"
)

// Board describes one target.
type Board struct {
	Name        string
	Description string
	// Firmware files taken from raspi-firmware (its /usr/lib/raspi-firmware).
	Firmware []string
	// DTBs are globs over the kernel's broadcom device trees.
	DTBs []string
	// UBoot is the U-Boot binary's path inside its package, and the package.
	UBoot, UBootPackage string
	// Console is the serial console on the kernel command line.
	Console string
	// Emulated boards have no Pi firmware: QEMU loads U-Boot with -bios.
	Emulated bool
	// Loads is the RAM the U-Boot script loads the kernel, device tree
	// and initramfs into; the addresses are planned per build from the
	// files' sizes (uboot.PlanLoads).
	Loads uboot.Window
	// Storage are the compatible strings of the controllers the board's
	// root storage (its SD card or eMMC) hangs off: the initramfs carries
	// the drivers of every supply, clock and power domain they need.
	Storage []string
	// QEMUMachine is the QEMU machine that emulates the board's SoC, and
	// QEMUDTB the device tree QEMU hands U-Boot on it (the Pi firmware's
	// job on hardware); see vm.
	QEMUMachine, QEMUDTB string
	// Tryboot: the board's firmware has tryboot_a_b (EEPROM bootloader).
	Tryboot bool
	// Unsupported says why a build for the board cannot give a bootable
	// image with the packages pibake fetches today ("" when it can):
	// pibake validate refuses the board with it, pibake boards shows it.
	Unsupported string
}

// piLoads: the firmware puts U-Boot at 0x80000 and U-Boot moves itself to
// the top of RAM; 256 MiB keeps clear of it on the 512 MiB Zero 2 W.
var piLoads = uboot.Window{RAMBase: 0, Base: 0x00200000, Limit: 0x10000000}

// Boards is every supported board.
var Boards = []Board{
	{
		Name:         "pi3",
		Description:  "Raspberry Pi 3 B/B+/A+, Zero 2 W (64-bit)",
		Firmware:     []string{"bootcode.bin", "start.elf", "fixup.dat"},
		DTBs:         []string{"bcm2837-*.dtb"},
		UBoot:        "usr/lib/u-boot/rpi_arm64/u-boot.bin",
		UBootPackage: "u-boot-rpi",
		Console:      "ttyS1,115200",
		Loads:        piLoads,
		// The SD slot is on sdhost on every bcm2837 board; the Arasan
		// sdhci carries Wi-Fi there.
		Storage:     []string{"brcm,bcm2835-sdhost"},
		QEMUMachine: "raspi3b", QEMUDTB: "bcm2837-rpi-3-b.dtb",
	},
	{
		Name:         "pi4",
		Description:  "Raspberry Pi 4 B, Pi 400, CM4",
		Firmware:     []string{"start4.elf", "fixup4.dat"},
		DTBs:         []string{"bcm2711-*.dtb"},
		UBoot:        "usr/lib/u-boot/rpi_arm64/u-boot.bin",
		UBootPackage: "u-boot-rpi",
		Console:      "ttyS1,115200",
		Loads:        piLoads,
		Storage:      []string{"brcm,bcm2711-emmc2"},
		QEMUMachine:  "raspi4b", QEMUDTB: "bcm2711-rpi-4-b.dtb",
		Tryboot: true,
	},
	{
		// The Pi 5's firmware lives in its EEPROM: nothing from
		// raspi-firmware goes on the card. u-boot-rpi's rpi_arm64 build
		// knows the bcm2712 and its SD controller. Debian trixie's
		// kernel does not build that controller's driver
		// (MMC_SDHCI_BRCMSTB), so a build with it stops at the
		// initramfs: no module for brcm,bcm2712-sdhci. See docs/boot.md.
		Name:         "pi5",
		Description:  "Raspberry Pi 5",
		DTBs:         []string{"bcm2712-*.dtb"},
		UBoot:        "usr/lib/u-boot/rpi_arm64/u-boot.bin",
		UBootPackage: "u-boot-rpi",
		Console:      "ttyAMA10,115200",
		Loads:        piLoads,
		Storage:      []string{"brcm,bcm2712-sdhci"},
		Tryboot:      true,
		Unsupported:  "Debian trixie's kernel has no driver for the Pi 5's SD controller (MMC_SDHCI_BRCMSTB), so the build stops at the initramfs (docs/boot.md#boards)",
	},
	{
		Name:         "qemu",
		Description:  "QEMU virt machine (cortex-a72), for tests and `pibake run`",
		UBoot:        "usr/lib/u-boot/qemu_arm64/u-boot.bin",
		UBootPackage: "u-boot-qemu",
		Console:      "ttyAMA0,115200",
		Emulated:     true,
		// QEMU's virt RAM starts at 1 GiB with its device tree at the
		// bottom; 4 MiB up is where u-boot-qemu loads kernels too.
		Loads:       uboot.Window{RAMBase: 0x40000000, Base: 0x40400000, Limit: 0x60000000},
		QEMUMachine: "virt",
	},
}

// Names lists the supported boards.
func Names() []string {
	var out []string
	for _, b := range Boards {
		out = append(out, b.Name)
	}
	return out
}

// Supported lists the boards a build gives a bootable image for.
func Supported() []string {
	var out []string
	for _, b := range Boards {
		if b.Unsupported == "" {
			out = append(out, b.Name)
		}
	}
	return out
}

// Lookup returns the named board.
func Lookup(name string) (Board, error) {
	var names []string
	for _, b := range Boards {
		if b.Name == name {
			return b, nil
		}
		names = append(names, b.Name)
	}
	return Board{}, fmt.Errorf("unknown board %q (supported: %s)", name, strings.Join(names, ", "))
}

// FirmwareDir is where raspi-firmware keeps the files in its package.
const FirmwareDir = "usr/lib/raspi-firmware"

// SelectDTBs returns the names of the device trees this board needs,
// sorted. It is an error if a glob matches nothing: the kernel would not
// boot on that board.
func (b Board) SelectDTBs(available map[string][]byte) ([]string, error) {
	var out []string
	for _, g := range b.DTBs {
		n := 0
		for name := range available {
			if ok, _ := path.Match(g, name); ok {
				out = append(out, name)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("board %s: the kernel ships no device tree matching %s", b.Name, g)
		}
	}
	sort.Strings(out)
	return out, nil
}
