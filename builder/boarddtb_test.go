package builder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
	"github.com/pibake/pibake/internal/testbase"
)

// ubootFDTFiles are the device trees u-boot-rpi 2025.01's rpi_arm64 build
// sets ${fdtfile} to, per board model (its strings), for the models each
// pibake board covers, and the kernel's device tree each one is.
var ubootFDTFiles = map[string]map[string]string{
	"pi3": {
		"broadcom/bcm2837-rpi-3-b.dtb":      "bcm2837-rpi-3-b.dtb",
		"broadcom/bcm2837-rpi-3-b-plus.dtb": "bcm2837-rpi-3-b-plus.dtb",
		"broadcom/bcm2837-rpi-3-a-plus.dtb": "bcm2837-rpi-3-a-plus.dtb",
		"broadcom/bcm2837-rpi-zero-2-w.dtb": "bcm2837-rpi-zero-2-w.dtb",
		"broadcom/bcm2837-rpi-cm3.dtb":      "bcm2837-rpi-cm3-io3.dtb",
	},
	"pi4": {
		"broadcom/bcm2711-rpi-4-b.dtb": "bcm2711-rpi-4-b.dtb",
		"broadcom/bcm2711-rpi-400.dtb": "bcm2711-rpi-400.dtb",
		"broadcom/bcm2711-rpi-cm4.dtb": "bcm2711-rpi-cm4-io.dtb",
	},
}

// Every model's U-Boot finds the device tree it asks for (${fdtfile})
// in both boot slots, with the kernel's bytes for that model: a load
// that fails leaves U-Boot on the firmware's tree from bootsel, which no
// update changes (the CM4 and CM3 did).
func TestSlotsHoldTheDTBUBootLoads(t *testing.T) {
	fx := newFixture(t)
	repo := fx.repo(t)
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "boards: [pi4, qemu]", "boards: [pi4, pi3]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for board, names := range ubootFDTFiles {
		res, err := Build(context.Background(), Options{Definition: def, Board: board, OutDir: filepath.Join(t.TempDir(), "out"), CacheDir: fx.cache})
		if err != nil {
			t.Fatal(err)
		}
		// The boot script loads ${fdtfile} from the slot it boots.
		script, err := ubootcheck.ParseScriptImage(readBootFile(t, res.Image, 1, "boot.scr"))
		if err != nil || !strings.Contains(script, "load ${devtype} ${devnum}:${pibake_bootpart} ${pibake_fdt_addr} ${fdtfile}") {
			t.Fatalf("board %s: boot.scr does not load ${fdtfile} from the slot (%v)", board, err)
		}
		f, size := openImage(t, res.Image)
		for _, part := range []string{layout.BootA, layout.BootB} {
			slot, _, err := inspect.FAT(f, size, part)
			if err != nil {
				t.Fatal(err)
			}
			for fdtfile, kernelDTB := range names {
				got, err := slot.ReadFile(fdtfile)
				if err != nil {
					t.Errorf("board %s, partition %s: U-Boot loads ${fdtfile}=%s, the slot has none (%v)", board, part, fdtfile, err)
					continue
				}
				if !bytes.Equal(got, testbase.DTB(kernelDTB)) {
					t.Errorf("board %s, partition %s: %s is not the kernel's %s", board, part, fdtfile, kernelDTB)
				}
			}
		}
		f.Close()
	}
}

// A Pi 5 build on a kernel packaged the trixie-backports way (its files
// in /usr/lib/modules/V) with the SD driver: both slots hold that kernel,
// both Pi 5 device trees (C1 and D0) and an initramfs with the driver of
// their SD node; bootsel holds U-Boot and config.txt and no start*.elf
// (the Pi 5's firmware is in its EEPROM).
func TestBuildPi5(t *testing.T) {
	need(t, "cpio")
	fx := newFixtureBase(t, testbase.WriteModulesLayout)
	repo := fx.repo(t)
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "boards: [pi4, qemu]", "boards: [pi5]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Definition: def, OutDir: filepath.Join(t.TempDir(), "out"), CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	pi5, _ := firmware.Lookup("pi5")
	checkBootChain(t, res.Image, pi5, rpiEnv, []byte(testbase.ModulesAlias+testbase.Pi5ModulesAlias), nil)
	// A D0 board: the script loads the D0 tree when the firmware's tree
	// is the D0 one (firmware/uboot's TestScriptPi5D0Tree runs it).
	if script, err := ubootcheck.ParseScriptImage(readBootFile(t, res.Image, 1, "boot.scr")); err != nil || !strings.Contains(script, "setenv fdtfile broadcom/bcm2712-d-rpi-5-b.dtb") {
		t.Errorf("boot.scr never loads the D0 stepping's tree (%v)", err)
	}
	f, size := openImage(t, res.Image)
	defer f.Close()
	for _, part := range []string{layout.BootA, layout.BootB} {
		slot, _, err := inspect.FAT(f, size, part)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"} {
			if got, err := slot.ReadFile("broadcom/" + name); err != nil || !bytes.Equal(got, testbase.DTB(name)) {
				t.Errorf("%s: broadcom/%s: %v", part, name, err)
			}
		}
		if _, err := slot.ReadFile("broadcom/bcm2711-rpi-4-b.dtb"); err == nil {
			t.Errorf("%s holds the Pi 4's device tree", part)
		}
		if k, err := slot.ReadFile(KernelFile); err != nil || len(k) != 3<<20 {
			t.Errorf("%s: %s: %d bytes, %v", part, KernelFile, len(k), err)
		}
	}
	bootsel, _, err := inspect.FAT(f, size, layout.Bootsel)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bootsel.ReadFile("config.txt")
	if err != nil || !strings.Contains(string(cfg), "kernel=u-boot.bin\n") {
		t.Errorf("bootsel config.txt: %v\n%s", err, cfg)
	}
	for _, absent := range []string{"start.elf", "start4.elf", "bootcode.bin", "fixup4.dat"} {
		if _, err := bootsel.ReadFile(absent); err == nil {
			t.Errorf("bootsel holds %s: the Pi 5 boots from its EEPROM", absent)
		}
	}
	for _, present := range []string{"u-boot.bin", "boot.scr", "bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"} {
		if _, err := bootsel.ReadFile(present); err != nil {
			t.Errorf("bootsel lacks %s: %v", present, err)
		}
	}
}
