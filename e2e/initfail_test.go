package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/vm"
)

// breakRoot zeroes the first MiB of a root partition (the squashfs
// superblock): the kernel boots, and pibake-init cannot mount the root.
func breakRoot(t *testing.T, img, part string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	_, entries, err := mbr.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	lay, err := layout.FromMBR(entries, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := lay.Part(part)
	if !ok {
		t.Fatalf("no partition %s", part)
	}
	if _, err := f.WriteAt(make([]byte, 1<<20), p.Offset); err != nil {
		t.Fatal(err)
	}
}

// TestPi3InitFails boots the pi3 build on raspi3b with slot A's root
// filesystem unreadable: the kernel starts, pibake-init cannot mount the
// root and reboots, three times, and U-Boot falls back to slot B. On a
// Pi the init can reboot only through bcm2835_wdt's restart handler (the
// device trees name no PSCI firmware), which the initramfs now loads.
func TestPi3InitFails(t *testing.T) {
	story(t, false)
	needPiQEMU(t, "raspi3b")
	img := copyImage(t, buildPi(t, "pi3"), 0)
	growTo(t, img, piCard)
	breakRoot(t, img, layout.RootA)
	editSlotDTBs(t, img, "pi3")
	editCmdline(t, img, "pi3")
	putBootsel(t, img, map[string]string{provision.FileName: piProvision("pi3-box")})
	// The init's own kernel-log line (its stderr line may be cut by the
	// kernel's on the shared console).
	failed := func(l string) bool {
		return strings.Contains(l, "pibake-init: mount root") && strings.Contains(l, "; rebooting")
	}
	run := runConsole(t, "pi3-initfails", vm.Options{Image: img, Persist: true, EditDTB: editDTB("pi3")}, 25*time.Minute,
		func(line string, _ time.Duration) bool {
			return strings.Contains(line, "reboot: Power down") || strings.Contains(line, "Reboot failed")
		},
		func(line string) time.Duration {
			switch {
			case failed(line):
				return 3 * time.Minute // the init's 10 s, then a reset
			case strings.Contains(line, "U-Boot 20"):
				return -1
			}
			return 0
		})
	if run.graced {
		t.Fatalf("the board did not reset within 3 min after pibake-init failed and rebooted (console in %s)", run.log)
	}
	if strings.Contains(run.console, "Reboot failed") {
		t.Fatalf("the kernel could not reboot after pibake-init failed: the board halts (console in %s)", run.log)
	}
	n := 0
	for _, l := range strings.Split(run.console, "\n") {
		if failed(l) {
			n++
		}
	}
	if n != 3 {
		t.Errorf("pibake-init failed and rebooted %d times, want 3", n)
	}
	for _, want := range []string{"E2E slot=b", "E2E state=running", "E2E hello=active"} {
		if !strings.Contains(run.console, want) {
			t.Errorf("the console has no %q (console in %s)", want, run.log)
		}
	}
	t.Logf("pi3 on raspi3b, slot a's root unreadable: three failed inits, each a reset, then slot b up %s after QEMU started", run.stopAt.Round(time.Second))
}
