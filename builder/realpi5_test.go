package builder

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
)

// TestRealPi5 builds images/pi5.yaml (trixie-backports' kernel) and
// checks what no QEMU machine can boot: the Pi 5's boot files, both of
// its device trees in each slot with the SD controller, PCIe and RP1
// nodes, the boot script against the real u-boot.bin's environment, and
// an initramfs that satisfies both trees' SD node from the real module
// aliases.
func TestRealPi5(t *testing.T) {
	needReal(t)
	need(t, "fdtget")
	a := copyTree(t, "..")
	res, took := buildLogged(t, Options{Definition: filepath.Join(a, "images", "pi5.yaml"), OutDir: filepath.Join(t.TempDir(), "pi5")})
	t.Logf("pi5 build took %s, kernel %s", took.Round(time.Second), res.Manifest.Kernel)
	modDir := "/usr/lib/modules/" + res.Manifest.Kernel
	read := map[string][]byte{modDir + "/modules.alias": nil, modDir + "/modules.builtin": nil}
	CheckImage(t, res.Image, ImageExpect{
		Read:     read,
		Hostname: "pi5",
		Files: map[string]string{
			modDir + "/kernel/drivers/mmc/host/sdhci-brcmstb.ko.xz":    "-rw-r--r-- 0/0",
			modDir + "/kernel/drivers/misc/rp1/rp1_pci.ko.xz":          "-rw-r--r-- 0/0",
			modDir + "/kernel/drivers/clk/clk-rp1.ko.xz":               "-rw-r--r-- 0/0",
			modDir + "/kernel/drivers/gpio/gpio-brcmstb.ko.xz":         "-rw-r--r-- 0/0",
			modDir + "/kernel/drivers/net/ethernet/cadence/macb.ko.xz": "-rw-r--r-- 0/0",
		},
		BootselFiles: []string{"u-boot.bin", "config.txt", "bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb", "boot.scr", "pibake.env"},
		SlotFiles:    []string{"vmlinuz", "initrd.img", "cmdline.txt", "pibake.json", "broadcom/bcm2712-rpi-5-b.dtb", "broadcom/bcm2712-d-rpi-5-b.dtb"},
	})
	ub := readBootFile(t, res.Image, 1, "u-boot.bin")
	if !bytes.Contains(ub, []byte("broadcom/bcm2712-rpi-5-b.dtb\x00")) {
		t.Error("u-boot.bin does not name broadcom/bcm2712-rpi-5-b.dtb")
	}
	env, err := ubootcheck.DefaultEnv(ub)
	if err != nil {
		t.Fatal(err)
	}
	pi5, _ := firmware.Lookup("pi5")
	checkBootChain(t, res.Image, pi5, env, read[modDir+"/modules.alias"], read[modDir+"/modules.builtin"])
	for _, name := range []string{"bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb"} {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, readBootFile(t, res.Image, 2, "broadcom/"+name), 0o644); err != nil {
			t.Fatal(err)
		}
		const rp1 = "/axi/pcie@1000120000/pci@0,0/dev@0,0"
		for node, compat := range map[string]string{
			"/soc@107c000000/mmc@fff000":            "brcm,bcm2712-sdhci",
			"/axi/pcie@1000120000":                  "brcm,bcm2712-pcie",
			rp1:                                     "pci1de4,1",
			rp1 + "/pci-ep-bus@1/ethernet@40100000": "raspberrypi,rp1-gem",
		} {
			out, err := exec.Command("fdtget", p, node, "compatible").CombinedOutput()
			if err != nil || !strings.Contains(string(out), compat) {
				t.Errorf("%s: %s compatible: %v %s", name, node, err, out)
			}
		}
	}
}
