package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/bootinit"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware/fdt"
	"github.com/pibake/pibake/firmware/fdt/fdtcheck"
	"github.com/pibake/pibake/firmware/uboot"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/vm"
)

// The Pi boards boot on QEMU's models of their SoCs (raspi3b, raspi4b):
// QEMU loads the image's own u-boot.bin and hands it the board's device
// tree from bootsel, the job the GPU firmware does on a Pi; everything
// after that (boot.scr, the counters, kernel, initramfs, the SD card
// driver, root from the card, first boot) is the image's own.
//
// Emulated Pis are slow (a 4-core SoC on the host's 2 cores, an SD
// controller driven a word at a time), so the card is small: the demo's
// partitions shrunk to what its files need, on a 1 GiB card (QEMU's SD
// model wants a power of two), so the data partition grows by a few
// hundred MiB rather than gigabytes.
var piPartitions = map[string]string{"bootsel": "48MiB", "boot": "64MiB", "root": "288MiB", "data": "64MiB"}

const piCard = 1 << 30

// piDTBEdits are the only changes made to the board's device tree, each
// for a part of the board QEMU does not emulate. They are made to the
// copy QEMU hands U-Boot and to the copies on the test's card (the boot
// script gives the kernel the slot's own device tree); the built image is
// not changed. prop "" disables the node.
var piDTBEdits = map[string][]struct{ node, prop, why string }{
	"pi3": nil, // raspi3b runs bcm2837-rpi-3-b.dtb as the board ships it
	"pi4": {
		// emmc2's I/O voltage regulator is a GPIO on the firmware's
		// expander, set through a mailbox call QEMU's firmware model does
		// not answer; the card's power switch is on the same expander.
		// The initramfs still carries both regulator drivers (builder's
		// TestRealDemo checks that against every shipped bcm2711 DTB).
		{"/emmc2bus/mmc@7e340000", "vqmmc-supply", "regulator-gpio on raspberrypi,firmware-gpio: QEMU lacks the firmware's GPIO mailbox"},
		{"/emmc2bus/mmc@7e340000", "vmmc-supply", "regulator-fixed switched by the same firmware GPIO expander"},
		// The HDMI block (0x7ef00000) is not emulated: touching any of it
		// is a machine check.
		{"/soc/clock@7ef00000", "", "HDMI's DVP clock: not emulated"},
		{"/soc/interrupt-controller@7ef00100", "", "HDMI's L2 interrupt controller: not emulated"},
		{"/soc/hdmi@7ef00700", "", "HDMI 0: not emulated"},
		{"/soc/i2c@7ef04500", "", "HDMI 0's DDC I2C: not emulated"},
		{"/soc/hdmi@7ef05700", "", "HDMI 1: not emulated"},
		{"/soc/i2c@7ef09500", "", "HDMI 1's DDC I2C: not emulated"},
		// QEMU disables these four in the copy it is given (it says so on
		// stderr); the kernel's copy needs the same.
		{"/scb/pcie@7d500000", "", "PCIe (the USB 3 controller behind it) is not emulated"},
		{"/scb/ethernet@7d580000", "", "GENET is not emulated"},
		{"/soc/rng@7e104000", "", "rng200 is not emulated"},
		{"/soc/avs-monitor@7d5d2000/thermal", "", "the thermal sensor is not emulated"},
		// QEMU's mini UART interrupt never drops behind raspi4b's GIC (an
		// interrupt storm once the console opens, docs/boot.md); the test
		// console is the PL011 instead (piCmdlineEdits).
		{"/soc/serial@7e215040", "", "mini UART: its interrupt storms on QEMU's raspi4b"},
	},
}

// piCmdlineEdits (virt's too) are the only changes made to the kernel's command line
// (in boot.scr on the test's card), old → new, each for a fault of QEMU's
// model (or, for virt, a cost of its TCG); the built image is not changed.
var piCmdlineEdits = map[string][]struct{ old, new, why string }{
	"qemu": {virtNoKASLR},
	"pi3":  {piWatchdogOff},
	"pi4": {
		{"console=ttyS1,115200", "console=ttyAMA0,115200", "the mini UART is disabled (piDTBEdits): the console is the PL011"},
		{" panic=10", " panic=10 clk_ignore_unused", "the unused-clock sweep stops fw-clk-arm, after which QEMU's raspi4b delivers CPU 0 no interrupts"},
		piWatchdogOff,
	},
}

// virtNoKASLR spares the virt stories the price of kernel page-table
// isolation under TCG: QEMU's virt machine hands the kernel a KASLR seed,
// KASLR forces KPTI on (the Cortex-A72 has no E0PD), and each KPTI switch
// of the kernel's page tables at a system call's entry and exit costs the
// emulator a TLB flush. Measured side by side (two guests booted at once
// from one build, 2026-12-06): "Startup finished" 83 s with nokaslr
// against 105 s without. Nothing the stories check depends on the kernel's
// address layout; the built image keeps KASLR.
var virtNoKASLR = struct{ old, new, why string }{" panic=10", " panic=10 nokaslr",
	"KASLR forces KPTI on, and every KPTI page-table switch is a TLB flush for QEMU's TCG"}

// piWatchdogOff turns the hardware watchdog off for the boot (pibake-init
// and systemd both read it): QEMU's model of the Pi's power manager
// (hw/misc/bcm2835_powermgt.c) has no countdown, and resets the machine
// at once when PM_RSTC gets the full-reset bit, which is how bcm2835_wdt
// starts the watchdog. Its restart handler (the same write, 150 µs ahead)
// is a reset on hardware too, so reboots and power-off still work.
var piWatchdogOff = struct{ old, new, why string }{" panic=10", " panic=10 " + bootinit.WatchdogOff,
	"QEMU's bcm2835 power manager resets the machine the moment bcm2835_wdt starts the watchdog: it models no countdown"}

// editCmdline applies the board's command-line edits to boot.scr on the
// test's card.
func editCmdline(t *testing.T, img, board string) {
	t.Helper()
	edits := piCmdlineEdits[board]
	if len(edits) == 0 {
		return
	}
	for _, e := range edits {
		t.Logf("kernel command line edit for QEMU: %q -> %q (%s)", e.old, e.new, e.why)
	}
	rewriteBootFiles(t, img, layout.Bootsel, func(path string, data []byte) []byte {
		if path != "boot.scr" {
			return data
		}
		script, err := ubootcheck.ParseScriptImage(data)
		if err != nil {
			t.Fatalf("bootsel boot.scr: %v", err)
		}
		for _, e := range edits {
			if !strings.Contains(script, e.old) {
				t.Fatalf("boot.scr has no %q", e.old)
			}
			script = strings.ReplaceAll(script, e.old, e.new)
		}
		out, err := uboot.ScriptImage("pibake A/B boot", script)
		if err != nil {
			t.Fatal(err)
		}
		return out
	})
}

func editDTB(board string) func(*fdt.Tree) error {
	return func(tree *fdt.Tree) error {
		for _, e := range piDTBEdits[board] {
			n := fdtcheck.Lookup(tree, e.node)
			if n == nil {
				return fmt.Errorf("no node %s", e.node)
			}
			if e.prop == "" {
				n.SetProp("status", []byte("disabled\x00"))
			} else if !n.DeleteProp(e.prop) {
				return fmt.Errorf("%s has no %s", e.node, e.prop)
			}
		}
		return nil
	}
}

// editSlotDTBs applies the board's edits to the device trees on both
// boot partitions of the test's card.
func editSlotDTBs(t *testing.T, img, board string) {
	t.Helper()
	for _, e := range piDTBEdits[board] {
		what := "drop " + e.prop
		if e.prop == "" {
			what = "disable"
		}
		t.Logf("DTB edit for QEMU: %s: %s (%s)", e.node, what, e.why)
	}
	for _, part := range []string{layout.BootA, layout.BootB} {
		rewriteBootFiles(t, img, part, func(path string, data []byte) []byte {
			if !strings.HasPrefix(path, "broadcom/") || !strings.HasSuffix(path, ".dtb") {
				return data
			}
			tree, err := fdt.Parse(data)
			if err != nil {
				t.Fatalf("%s %s: %v", part, path, err)
			}
			if err := editDTB(board)(tree); err != nil {
				t.Fatalf("%s %s: %v", part, path, err)
			}
			return tree.Encode()
		})
	}
}

func buildPi(t *testing.T, board string) string {
	t.Helper()
	img, err := buildVariant(t, variant{overlay: "e2e", service: "e2e-report", board: board, partitions: piPartitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(strings.TrimSuffix(img, "/demo/demo.img")) })
	return img
}

// stateFile reads pibake.env from the image's bootsel, its variables in
// name order, whoever wrote it last (U-Boot's env export sorts them and
// ends with a NUL; pibake-boot-ok writes them in its own order).
func stateFile(t *testing.T, img string) string {
	t.Helper()
	b := bootselFile(t, img, bootchain.StateFile)
	var vars []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\x00\n"), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			vars = append(vars, line)
		}
	}
	sort.Strings(vars)
	return strings.Join(vars, " ")
}

// bootselFile reads one file of the card's bootsel partition.
func bootselFile(t *testing.T, img, name string) []byte {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	fsys, _, err := inspect.FAT(f, st.Size(), layout.Bootsel)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fsys.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func needPiQEMU(t *testing.T, machine string) {
	t.Helper()
	if _, err := vm.QEMUFor(machine); err != nil {
		t.Fatal(err) // make test installs it: never skip
	}
}

// TestPi4 boots the pi4 build on raspi4b from slot A to multi-user: U-Boot
// (the image's own, with the board's device tree) finds the card on emmc2,
// runs boot.scr, spends one of slot A's tries and writes it back, loads the
// kernel, initramfs and device tree to the addresses planned from the
// kernel's header and starts the kernel (the step where Debian's fixed
// addresses made every Pi boot fail); the initramfs brings up emmc2 with
// sdhci-iproc, root comes from p5, first boot grows and formats the data
// partition and the hello container comes up. QEMU's model needs the
// device-tree and command-line edits listed above, none in the image.
func TestPi4(t *testing.T) {
	story(t, laneUpdate)
	needPiQEMU(t, "raspi4b")
	img := copyImage(t, buildPi(t, "pi4"), 0)
	growTo(t, img, piCard)
	editSlotDTBs(t, img, "pi4")
	editCmdline(t, img, "pi4")
	putBootsel(t, img, map[string]string{provision.FileName: piProvision("pi4-box")})
	r := bootWith(t, "pi4", vm.Options{Image: img, Persist: true, EditDTB: editDTB("pi4")}, 20*time.Minute)
	out := r.console
	if !strings.Contains(out, "pibake: booting slot a (tries left: A 2, B 3)") {
		t.Error("U-Boot did not spend one of slot A's tries")
	}
	for _, bad := range []string{"Did not find a cmdline Flattened Device Tree", "Could not find a valid device tree", "did not boot"} {
		if strings.Contains(out, bad) {
			t.Errorf("U-Boot said %q", bad)
		}
	}
	expect(t, r, "state", "running")
	expect(t, r, "failed", "")
	// emmc2 is mmcblk0 or mmcblk1, whichever of the two SD controllers
	// the kernel probes first (both seen on raspi4b).
	if root := r.fields["root"]; root != "/dev/mmcblk0p5" && root != "/dev/mmcblk1p5" {
		t.Errorf("root = %q, want partition 5 of the card", root)
	}
	expect(t, r, "slot", "a")
	expect(t, r, "hello", "active")
	checkPiProvision(t, img, r, "pi4-box")
	t.Logf("pi4 on raspi4b: multi-user %s after QEMU started (%s)", r.elapsed.Round(time.Second), r.fields["analyze"])
	if got := stateFile(t, img); got != "BOOT_A_LEFT=3 BOOT_B_LEFT=3 BOOT_ORDER=A B" {
		t.Errorf("pibake.env after slot A came up (its tries restored by pibake-boot-ok): %s", got)
	}
	checkGrown(t, r, piCard)
}

// TestPi3Fallback boots the pi3 build on raspi3b with slot A's root
// filesystem unreadable: U-Boot spends one of A's tries and starts its
// kernel, pibake-init cannot mount the root and reboots, three times (on
// a Pi the init can reboot only through bcm2835_wdt's restart handler:
// the device trees name no PSCI firmware, so the initramfs loads it
// first), and U-Boot falls back to slot B, which comes up to multi-user
// from root-b on the SD card (sdhost), with the data partition created
// and grown. The board has no network device (QEMU's raspi3b gives
// pibake's image none), so this is also a first boot without a network.
// (A kernel that does not load at all, U-Boot's own failure path, is
// shown on virt before TestUpdate's story: ubootSkipsUnloadableKernel.)
func TestPi3Fallback(t *testing.T) {
	story(t, laneEdge)
	needPiQEMU(t, "raspi3b")
	img := copyImage(t, buildPi(t, "pi3"), 0)
	growTo(t, img, piCard)
	breakRoot(t, img, layout.RootA)
	editSlotDTBs(t, img, "pi3")
	editCmdline(t, img, "pi3")
	putBootsel(t, img, map[string]string{provision.FileName: piProvision("pi3-box")})
	// The init's own kernel-log line (its stderr line may be cut by the
	// kernel's on the shared console).
	initFailed := func(l string) bool {
		return strings.Contains(l, "pibake-init: mount root") && strings.Contains(l, "; rebooting")
	}
	var fails []time.Duration
	r := bootHook(t, "pi3-fallback", vm.Options{Image: img, Persist: true, EditDTB: editDTB("pi3")}, 25*time.Minute, func(line string, at time.Duration) {
		if initFailed(line) {
			fails = append(fails, at)
		}
		if strings.Contains(line, "Reboot failed") {
			t.Errorf("the kernel could not reboot after pibake-init failed: the board halts")
		}
	})
	if len(fails) != 3 {
		t.Errorf("pibake-init failed and rebooted %d times, want 3", len(fails))
	}
	expect(t, r, "state", "running")
	expect(t, r, "failed", "")
	expect(t, r, "root", "/dev/mmcblk0p6")
	expect(t, r, "slot", "b")
	expect(t, r, "hello", "active")
	checkPiProvision(t, img, r, "pi3-box")
	if n := strings.Count(r.console, "pibake: booting slot a"); n != 3 {
		t.Errorf("slot a was tried %d times, want 3", n)
	}
	if got := stateFile(t, img); got != "BOOT_A_LEFT=0 BOOT_B_LEFT=3 BOOT_ORDER=B A" {
		t.Errorf("pibake.env after falling back to B (B first with its tries restored by pibake-boot-ok): %s", got)
	}
	checkGrown(t, r, piCard)
	t.Logf("pi3 on raspi3b, slot a's root unreadable: pibake-init failed at %v (each a reset), slot b up %s after QEMU started", fails, r.elapsed.Round(time.Second))
}

// piProvision is a provisioning file for the emulated Pi boards, which
// have no network: the host name, a file under /data and a Wi-Fi network
// (the board's onboard Wi-Fi is not emulated; its configuration is).
func piProvision(host string) string {
	return "hostname: " + host + "\nwifi:\n  country: DE\n  networks:\n    - ssid: e2e-pi\n      passphrase: \"" + wifiSecret + "\"\n" +
		"files:\n  - path: e2e/hello\n    content: \"placed by provisioning\\n\"\n"
}

// checkPiProvision: the provisioning file was applied at first boot, as on
// virt, and its secret erased from bootsel.
func checkPiProvision(t *testing.T, img string, r report, host string) {
	t.Helper()
	expect(t, r, "hostname", host)
	expect(t, r, "provision", "active 1")
	expect(t, r, "datafile", "placed by provisioning")
	expect(t, r, "wifi", "600 country=DE")
	if names := noSecrets(t, img, wifiSecret); containsFold(names, provision.FileName) {
		t.Errorf("%s still on bootsel: %v", provision.FileName, names)
	}
}

func growTo(t *testing.T, img string, size int64) {
	t.Helper()
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > size {
		t.Fatalf("%s is %d bytes, more than the %d byte card", img, st.Size(), size)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
}

// checkGrown: the data partition fills the card, less the partitions
// before it (the filesystem reports a little less than its partition).
func checkGrown(t *testing.T, r report, card int64) {
	t.Helper()
	size := dataSize(t, r)
	if size < card/5 {
		t.Errorf("data filesystem is %d bytes: not grown to the %d byte card", size, card)
	}
	t.Logf("data filesystem %d MiB on a %d MiB card", size>>20, card>>20)
}
