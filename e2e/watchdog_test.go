package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/vm"
)

// watchdogQEMU gives virt the watchdog a Pi has on its SoC: QEMU's
// i6300esb (a PCI device, Debian's kernel has its driver as a module,
// which the qemu board's initramfs loads), its expiry a reset.
var watchdogQEMU = []string{"-device", "i6300esb", "-action", "watchdog=reset"}

// hangReset is how long a hung trial may stay silent before the story
// says the watchdog did not reset it: the init's 60 s timeout
// (bootinit.WatchdogTimeout) with room for a loaded host.
const hangReset = 5 * time.Minute

// TestWatchdog: a trial release whose PID 1 hangs without panicking
// (its /sbin/init sleeps for ever: the kernel is fine, panic=10 cannot
// help) is reset by the hardware watchdog the init armed and left armed
// for systemd, and the device falls back to the release it ran:
//
//	v1 boots in slot a on virt with an i6300esb; pibake-init arms it,
//	   systemd takes it over (RuntimeWatchdogSec) and feeds it through
//	   the whole story.
//	v2, published, is installed into slot b and trial-booted: its PID 1
//	   hangs; the watchdog resets the machine; U-Boot, b's one try spent,
//	   boots a (v1).
//	The agent arms b once more (one fallback may have been a power cut):
//	   the same hang, the same reset, and the agent records v2 as failed
//	   at boot.
func TestWatchdog(t *testing.T) {
	story(t, true) // the beside lane, after or before TestUpdate
	keys := t.TempDir()
	if _, _, err := channel.GenerateKeyFiles(keys, "fleet", ""); err != nil {
		t.Fatal(err)
	}
	updater := "server: http://" + serverName + ":8080\nchannel: stable\nkeys: [keys/fleet.pub]\npoll: 1m\nhealth:\n  deadline: 3m\n  units: [demo-hello.service]\n"
	builds := map[string]string{}
	for _, v := range []variant{
		{version: "1.0.0", overlay: "e2e-status", service: "e2e-status", updater: updater, keys: keys},
		// The service is e2e-status's unit: v2 never starts it.
		{version: "2.0.0", overlay: "e2e-hang", service: "e2e-status", updater: updater, keys: keys},
	} {
		img, err := buildVariant(t, v)
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(filepath.Dir(filepath.Dir(img)))
		builds[v.version] = img
	}
	key, err := channel.LoadPrivateKey(filepath.Join(keys, "fleet.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	srv := serveRepo(t, repo)
	dns := serveDNS(t, map[string]string{serverName: serverAddr})
	img := copyImage(t, builds["1.0.0"], 0)

	type step struct {
		name string
		want func(line string) bool
	}
	has := func(parts ...string) func(string) bool {
		return func(line string) bool {
			for _, p := range parts {
				if !strings.Contains(line, p) {
					return false
				}
			}
			return true
		}
	}
	hang := has("E2E-HANG: PID 1 of 2.0.0 sleeps for ever")
	reset := has("U-Boot 20")
	steps := []step{
		{"v1 up in slot a", has("E2E-STATUS version=1.0.0 slot=a ", "hello=[hello from pibake")},
		{"v2 downloaded, trial reboot", has("rebooting into the trial")},
		{"U-Boot tries slot b", has("pibake: booting slot b")},
		{"v2's PID 1 hangs", hang},
		{"the watchdog resets the machine", reset},
		{"U-Boot falls back to slot a", has("pibake: booting slot a")},
		{"the agent arms v2 once more", has("rebooting into the trial")},
		{"v2's PID 1 hangs again", hang},
		{"the watchdog resets the machine again", reset},
		{"v1 up in slot a, v2 failed at boot", has("E2E-STATUS version=1.0.0 slot=a ", "failed: 2.0.0 at boot", "hello=[hello from pibake")},
	}
	var status []string // the status lines of the two steps that wait for one
	var at []time.Duration
	i := 0
	opts := vm.Options{Image: img, Persist: true, Extra: watchdogQEMU,
		GuestCmd: map[string]string{serverAddr + ":8080": guestRelay(t, srv.addr), guestDNS: guestRelay(t, dns.addr)}}
	run := runConsole(t, "watchdog", opts, 60*time.Minute, func(line string, now time.Duration) bool {
		if !steps[i].want(line) {
			return false
		}
		at = append(at, now)
		if strings.Contains(line, "E2E-STATUS ") {
			status = append(status, line)
		}
		t.Logf("%-42s at %6s", steps[i].name, now.Round(time.Second))
		if i == 0 {
			if _, err := publish.Publish(context.Background(), publish.Options{Repo: repo, Channel: "stable", Build: filepath.Dir(builds["2.0.0"]), Key: key, Expires: 24 * time.Hour, Rollout: 1, Now: time.Now()}); err != nil {
				t.Error(err)
				return true
			}
		}
		i++
		return i == len(steps)
	}, func(line string) time.Duration {
		switch {
		case hang(line):
			return hangReset
		case reset(line):
			return -1
		}
		return 0
	})
	if run.graced {
		t.Fatalf("the trial's hung PID 1 was not reset within %s: no watchdog reset (console in %s)", hangReset, run.log)
	}
	if i < len(steps) {
		t.Fatalf("stuck before step %q after %s: %v (console in %s)", steps[i].name, run.elapsed.Round(time.Second), run.err, run.log)
	}
	for _, s := range []int{4, 8} {
		t.Logf("hang to reset: %s", (at[s] - at[s-1]).Round(time.Second))
		if d := at[s] - at[s-1]; d < 50*time.Second {
			t.Errorf("reset %s after the hang: sooner than the watchdog's 60 s, so not the watchdog", d.Round(time.Second))
		}
	}
	// systemd fed the watchdog all along: it is active, with systemd's
	// timeout, whenever v1 runs.
	for _, l := range status {
		if !strings.Contains(l, "wdog=[active 30 ]") {
			t.Errorf("the watchdog is not active with systemd's 30 s timeout: %s", l)
		}
	}
	checkWatchdogConsole(t, run.console)
}

// checkWatchdogConsole: the init armed the watchdog and handed it over,
// and systemd opened the same device after the init closed it.
func checkWatchdogConsole(t *testing.T, console string) {
	t.Helper()
	for _, want := range []string{
		"pibake-init: watchdog /dev/watchdog0 (i6300ESB timer) armed for 60 s",
		"watchdog did not stop!", // the kernel, when the init's file closes at the switch without 'V'
		"Using hardware watchdog 'i6300ESB timer'",
		"timeout of 30s", // "Watchdog running with a (hardware) timeout of 30s."
	} {
		if !strings.Contains(console, want) {
			t.Errorf("the console never says %q", want)
		}
	}
}
