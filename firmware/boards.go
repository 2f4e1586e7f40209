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
	// RootFirmware are files of raspi-firmware below /usr/lib/firmware
	// that the board's devices need in the root and no package of the
	// root ships (the build adds each one a package does not provide).
	RootFirmware []string
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
	// Models are the Raspberry Pi models the board covers, each with the
	// device tree U-Boot loads for it.
	Models []Model
	// FDTVariants are the models' variants U-Boot gives the same
	// ${fdtfile}; the boot script loads each one's own tree when the
	// firmware's tree shows it (uboot.FDTVariant).
	FDTVariants []uboot.FDTVariant
	// KernelConfig are the options (CONFIG_...) the kernel must build,
	// as =y or =m, to boot the board; KernelFix says which kernel does.
	KernelConfig []string
	KernelFix    string
	// BackportsKernel: no kernel of the main suite can boot the board;
	// pibake validate asks for linux-image-*/SUITE-backports.
	BackportsKernel bool
	// Caveats are what a user should know before flashing the board.
	Caveats []string
	// Unsupported says why a build for the board cannot give a bootable
	// image with the packages pibake fetches today ("" when it can):
	// pibake validate refuses the board with it, pibake boards shows it.
	Unsupported string
}

// Model is one Raspberry Pi model of a board.
type Model struct {
	Name string
	// FDTFile is the device tree u-boot-rpi's rpi_arm64 build (2025.01)
	// sets ${fdtfile} to for the model; each slot holds it under that
	// name (below broadcom/), and with the tryboot chain at its root.
	FDTFile string
	// KernelDTB is the file of the kernel's device trees that FDTFile is
	// ("" when the kernel ships it under FDTFile's name).
	KernelDTB string
	// Console is the serial console on the model's GPIO header, when it
	// is not the board's.
	Console string
}

// DTB is the kernel's device tree for the model.
func (m Model) DTB() string {
	if m.KernelDTB != "" {
		return m.KernelDTB
	}
	return m.FDTFile
}

// piLoads: the firmware puts U-Boot at 0x80000 and U-Boot moves itself to
// the top of RAM; 256 MiB keeps clear of it on the 512 MiB Zero 2 W.
var piLoads = uboot.Window{RAMBase: 0, Base: 0x00200000, Limit: 0x10000000}

// Boards is every supported board.
var Boards = []Board{
	{
		Name:         "pi3",
		Description:  "Raspberry Pi 3 B/B+/A+, Zero 2 W, CM3 (64-bit)",
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
		Models: []Model{
			{Name: "Raspberry Pi 3 B", FDTFile: "bcm2837-rpi-3-b.dtb"},
			{Name: "Raspberry Pi 3 B+", FDTFile: "bcm2837-rpi-3-b-plus.dtb"},
			{Name: "Raspberry Pi 3 A+", FDTFile: "bcm2837-rpi-3-a-plus.dtb"},
			{Name: "Raspberry Pi Zero 2 W", FDTFile: "bcm2837-rpi-zero-2-w.dtb"},
			// The kernel has the CM3 only on its IO board.
			{Name: "Compute Module 3/3+", FDTFile: "bcm2837-rpi-cm3.dtb", KernelDTB: "bcm2837-rpi-cm3-io3.dtb"},
		},
	},
	{
		Name:        "pi4",
		Description: "Raspberry Pi 4 B, Pi 400, CM4",
		Firmware:    []string{"start4.elf", "fixup4.dat"},
		// The Pi 400's Wi-Fi (CYW43456): the kernel's brcmfmac asks for
		// brcm/brcmfmac43456-sdio.*, which firmware-brcm80211 lacks.
		RootFirmware: []string{"brcm/brcmfmac43456-sdio.bin", "brcm/brcmfmac43456-sdio.clm_blob", "brcm/brcmfmac43456-sdio.txt"},
		DTBs:         []string{"bcm2711-*.dtb"},
		UBoot:        "usr/lib/u-boot/rpi_arm64/u-boot.bin",
		UBootPackage: "u-boot-rpi",
		Console:      "ttyS1,115200",
		Loads:        piLoads,
		Storage:      []string{"brcm,bcm2711-emmc2"},
		QEMUMachine:  "raspi4b", QEMUDTB: "bcm2711-rpi-4-b.dtb",
		Tryboot: true,
		Models: []Model{
			{Name: "Raspberry Pi 4 B", FDTFile: "bcm2711-rpi-4-b.dtb"},
			{Name: "Raspberry Pi 400", FDTFile: "bcm2711-rpi-400.dtb"},
			// The kernel has the CM4 only on its IO board.
			{Name: "Compute Module 4", FDTFile: "bcm2711-rpi-cm4.dtb", KernelDTB: "bcm2711-rpi-cm4-io.dtb"},
		},
	},
	{
		// The Pi 5's firmware lives in its EEPROM: nothing from
		// raspi-firmware goes on the card. u-boot-rpi's rpi_arm64 build
		// knows the bcm2712 and its SD controller (no RP1: no Ethernet
		// or USB in U-Boot; the kernel brings them). Only the U-Boot
		// chain: tryboot needs a kernel that passes the tryboot flag on
		// reboot, and the only Debian kernel with the Pi 5's drivers
		// (trixie-backports') does not. docs/boot.md#raspberry-pi-5.
		Name:         "pi5",
		Description:  "Raspberry Pi 5 (trixie-backports kernel)",
		DTBs:         []string{"bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"},
		UBoot:        "usr/lib/u-boot/rpi_arm64/u-boot.bin",
		UBootPackage: "u-boot-rpi",
		// The debug UART connector (uart10 in the upstream tree).
		Console: "ttyAMA10,115200",
		Loads:   piLoads,
		Storage: []string{"brcm,bcm2712-sdhci"},
		Models: []Model{
			// U-Boot 2025.01 names one tree for every Pi 5 (board type
			// 0x17); FDTVariants picks the D0 stepping's.
			{Name: "Raspberry Pi 5", FDTFile: "bcm2712-rpi-5-b.dtb"},
		},
		// The kernel's two Pi 5 trees differ in their pinctrl nodes (the
		// D0 stepping's registers moved): the firmware's tree, U-Boot's
		// control tree, says which one the firmware chose for the chip.
		FDTVariants: []uboot.FDTVariant{{
			FDTFile: "broadcom/bcm2712-rpi-5-b.dtb",
			Node:    "/soc@107c000000/pinctrl@7d504100", Prop: "compatible", Value: "brcm,bcm2712d0-pinctrl",
			File: "broadcom/bcm2712-d-rpi-5-b.dtb",
		}},
		KernelConfig:    []string{"CONFIG_MMC_SDHCI_BRCMSTB", "CONFIG_GPIO_BRCMSTB", "CONFIG_PINCTRL_BCM2712"},
		BackportsKernel: true,
		KernelFix:       "the trixie-backports kernel: set debian.backports: true and ask for linux-image-arm64/trixie-backports in debian.packages (images/pi5.yaml)",
		Caveats: []string{
			"no QEMU machine emulates it: proven by file checks only (docs/boot.md#raspberry-pi-5)",
			"Ethernet and USB come up only once the kernel runs (U-Boot has no RP1 driver)",
			"D0-stepping boards get bcm2712-d-rpi-5-b.dtb only when the firmware hands U-Boot the D0 tree: on first boot, check for the boot script's line 'loading broadcom/bcm2712-d-rpi-5-b.dtb' (docs/boot.md#raspberry-pi-5)",
		},
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

// LinuxFirmwareDir is where the kernel looks for firmware files, and
// where raspi-firmware keeps the ones it carries for the kernel.
const LinuxFirmwareDir = "usr/lib/firmware"

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

// SlotDTB is a device tree file of a boot slot: Name is its file name,
// Source the kernel's device tree it holds.
type SlotDTB struct{ Name, Source string }

// SlotDTBs are the device tree files of each boot slot, sorted by name:
// the kernel's trees for the board under their own names, and each
// model's tree under the name U-Boot loads for it when the kernel ships
// it under another (the CM4's bcm2711-rpi-cm4.dtb is the kernel's
// bcm2711-rpi-cm4-io.dtb). So the tree a model boots with is in the
// slot, and an update changes it with the kernel.
func (b Board) SlotDTBs(available map[string][]byte) ([]SlotDTB, error) {
	names, err := b.SelectDTBs(available)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []SlotDTB
	for _, n := range names {
		seen[n] = true
		out = append(out, SlotDTB{Name: n, Source: n})
	}
	for _, m := range b.Models {
		if _, ok := available[m.DTB()]; !ok {
			return nil, fmt.Errorf("board %s: the kernel ships no %s, the device tree of the %s (U-Boot loads it as %s)", b.Name, m.DTB(), m.Name, m.FDTFile)
		}
		if !seen[m.FDTFile] {
			seen[m.FDTFile] = true
			out = append(out, SlotDTB{Name: m.FDTFile, Source: m.DTB()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CheckKernel says whether the kernel (its version and its config file,
// /usr/lib/modules/VERSION/config or /boot/config-VERSION) can boot the
// board: every option of KernelConfig built in or as a module.
func (b Board) CheckKernel(version string, config []byte) error {
	set := map[string]bool{}
	for _, line := range strings.Split(string(config), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && (v == "y" || v == "m") {
			set[k] = true
		}
	}
	var missing []string
	for _, opt := range b.KernelConfig {
		if !set[opt] {
			missing = append(missing, opt)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("board %s: kernel %s does not build %s (not =y or =m in its config), so it cannot boot the board: use %s", b.Name, version, strings.Join(missing, ", "), b.KernelFix)
	}
	return nil
}
