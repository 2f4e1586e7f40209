package bootinit

// The SoC's watchdog, armed by the init. A kernel or init that hangs
// without panicking (panic=10 resets only a panic) would hang a device for
// ever, a trial boot included, and the boot loader's try counter would
// never move to the other slot. So the init arms the hardware watchdog as
// soon as its driver is loaded (bcm2835_wdt on the Pis, i6300esb on QEMU's
// virt), feeds it while it works, for at most watchdogBudget (unless it
// waits for one of two disks with the image's signature to go), and leaves
// it armed when it hands over: systemd (RuntimeWatchdogSec, the builder's
// system.conf drop-in) opens the same device and feeds it from then on. A
// hang between the two, /sbin/init that never gets going included, resets
// the device HandoverTimeout after the switch.
//
// Handing over: the kernel's watchdog core stops a device whose file is
// closed after the magic character 'V' was written to it, and keeps it
// running (with one last keepalive, and the critical message "watchdog
// did not stop!") when it is closed without: the init never writes 'V'.
// Its file is closed when the init execs systemd (close-on-exec), so
// systemd's open does not find it busy. A driver without WDIOF_MAGICCLOSE
// stops on any close: the init then says the watchdog cannot be handed
// over and only its own phase is covered.

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pibake/pibake/bootchain"
	"golang.org/x/sys/unix"
)

const (
	// WatchdogDevice is the first watchdog the kernel registers, the one
	// systemd uses by default.
	WatchdogDevice = "/dev/watchdog0"
	// WatchdogTimeout is the timeout the init sets: a hang in the init
	// resets the device this long after the init stopped feeding.
	WatchdogTimeout = 60 * time.Second
	// HandoverTimeout is the timeout the init leaves at the switch: from
	// then systemd has this long to open the device (after which its
	// RuntimeWatchdogSec rules). systemd opens it a few seconds after the
	// switch on a Pi; on an emulated guest of a loaded host it took 3 to
	// 40 s, and once more than 60 s, which reset a healthy boot (a trial
	// spent for nothing; a committed slot so slow would reset at every
	// boot). A PID 1 that never gets going is reset this long after the
	// switch.
	HandoverTimeout = 2 * time.Minute
	// WatchdogOff on the kernel command line turns the hardware watchdog
	// off for the whole boot: the init does not arm it, and systemd reads
	// the same parameter (its RuntimeWatchdogSec is then off). It is for
	// machines whose watchdog cannot be armed without resetting at once
	// (QEMU's Raspberry Pi models).
	WatchdogOff = "systemd.watchdog_sec=off"
)

// watchdogBudget is how long the init feeds the watchdog: longer than
// any first boot's mke2fs or resize2fs of a large card, shorter than a
// wait for ever. An init still running after it is reset.
const watchdogBudget = 10 * time.Minute

// watchdogDevice is what the init needs of a watchdog: the real device
// (wdFile) or a fake in tests.
type watchdogDevice interface {
	// MagicClose reports whether the device stops only on a magic close,
	// so that closing it without 'V' leaves it armed.
	MagicClose() (bool, error)
	// SetTimeout sets the timeout and returns the one the driver took.
	SetTimeout(d time.Duration) (time.Duration, error)
	// Keepalive feeds the watchdog.
	Keepalive() error
}

// armWatchdog arms the device at WatchdogDevice unless the kernel command
// line turns the watchdog off, and feeds it in the background. It never
// fails the boot: without a watchdog the boot goes on, and says so. It
// returns the device armed (nil if none), for handOver at the switch.
func armWatchdog(log initLog) watchdogDevice {
	raw, _ := os.ReadFile("/proc/cmdline")
	if watchdogTurnedOff(string(raw)) {
		log.printf("watchdog: turned off on the kernel command line (%s)", WatchdogOff)
		return nil
	}
	fd, err := unix.Open(WatchdogDevice, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		log.printf("watchdog: no %s: a hang of this boot is not reset", WatchdogDevice)
		return nil
	}
	if err != nil {
		log.alertf("watchdog: open %s: %v: a hang of this boot is not reset", WatchdogDevice, err)
		return nil
	}
	w := wdFile(fd)
	msg, err := arm(w, WatchdogTimeout)
	if err != nil {
		log.alertf("watchdog %s %s: %v", WatchdogDevice, w.identity(), err)
	}
	log.printf("watchdog %s %s %s", WatchdogDevice, w.identity(), msg)
	go feed(w, WatchdogTimeout/4, watchdogBudget, twoRoots, func(err error) {
		log.alertf("watchdog %s: keepalive: %v", WatchdogDevice, err)
	})
	return w
}

// handOver gives systemd HandoverTimeout to take the watchdog over: the
// init sets it (which feeds it too) just before it execs systemd. A
// driver that cannot take it keeps WatchdogTimeout, and the console says
// so. w nil: nothing was armed.
func handOver(w watchdogDevice, log initLog) {
	if w == nil {
		return
	}
	got, err := w.SetTimeout(HandoverTimeout)
	if err != nil {
		log.alertf("watchdog %s: set the %d s handover timeout: %v: systemd has the init's %d s to take it over", WatchdogDevice, HandoverTimeout/time.Second, err, WatchdogTimeout/time.Second)
		return
	}
	log.printf("watchdog %s: systemd has %d s to take it over", WatchdogDevice, got/time.Second)
}

// twoRoots reports whether two disks carry the image's signature, the one
// wait of the init meant to last (waitRoot: until someone removes one):
// while it does, the init's budget does not run out.
func twoRoots() bool {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return false
	}
	cl, err := bootchain.ParseCmdline(string(raw))
	if err != nil {
		return false
	}
	_, err = FindPartition("/sys/class/block", "/dev", cl.Signature, cl.RootPart)
	return errors.Is(err, ErrAmbiguous)
}

// watchdogTurnedOff reports whether the command line says WatchdogOff.
func watchdogTurnedOff(cmdline string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == WatchdogOff {
			return true
		}
	}
	return false
}

// arm sets the timeout on an opened (so started) watchdog and returns
// what the console should say about it. An error leaves the watchdog
// running with the driver's own timeout.
func arm(w watchdogDevice, timeout time.Duration) (string, error) {
	got, err := w.SetTimeout(timeout)
	if err != nil {
		return "armed with its driver's timeout", fmt.Errorf("set a %d s timeout: %w", timeout/time.Second, err)
	}
	magic, err := w.MagicClose()
	if err != nil || !magic {
		return fmt.Sprintf("armed for %d s; it stops when the init closes it, so it guards the init only", got/time.Second),
			errors.Join(errors.New("no magic close: it cannot be handed to systemd armed"), err)
	}
	return fmt.Sprintf("armed for %d s: fed by the init for at most %s, then handed to systemd armed (so the kernel says \"watchdog did not stop!\" at the switch)",
		got/time.Second, watchdogBudget), nil
}

// feed feeds w every interval for budget, and for another budget each
// time hold says the init is in a wait meant to last; then it stops, so
// that an init that hangs is reset. Failed feeds go to fail (once each in
// a row, not every interval).
func feed(w watchdogDevice, every, budget time.Duration, hold func() bool, fail func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	end := time.After(budget)
	failing := false
	for {
		select {
		case <-end:
			if !hold() {
				return
			}
			end = time.After(budget)
		case <-t.C:
			err := w.Keepalive()
			if err != nil && !failing {
				fail(err)
			}
			failing = err != nil
		}
	}
}

// wdFile is an opened watchdog device.
type wdFile int

func (f wdFile) MagicClose() (bool, error) {
	info, err := unix.IoctlGetWatchdogInfo(int(f))
	if err != nil {
		return false, fmt.Errorf("WDIOC_GETSUPPORT: %w", err)
	}
	return info.Options&unix.WDIOF_MAGICCLOSE != 0, nil
}

func (f wdFile) SetTimeout(d time.Duration) (time.Duration, error) {
	if err := unix.IoctlSetPointerInt(int(f), unix.WDIOC_SETTIMEOUT, int(d/time.Second)); err != nil {
		return 0, fmt.Errorf("WDIOC_SETTIMEOUT: %w", err)
	}
	s, err := unix.IoctlGetInt(int(f), unix.WDIOC_GETTIMEOUT)
	if err != nil {
		return 0, fmt.Errorf("WDIOC_GETTIMEOUT: %w", err)
	}
	return time.Duration(s) * time.Second, nil
}

func (f wdFile) Keepalive() error {
	if err := unix.IoctlWatchdogKeepalive(int(f)); err != nil {
		return fmt.Errorf("WDIOC_KEEPALIVE: %w", err)
	}
	return nil
}

// identity is the driver's name for the device ("i6300ESB timer").
func (f wdFile) identity() string {
	info, err := unix.IoctlGetWatchdogInfo(int(f))
	if err != nil {
		return "(" + WatchdogDevice + ")"
	}
	return "(" + strings.TrimRight(string(info.Identity[:]), "\x00") + ")"
}
