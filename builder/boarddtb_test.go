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
