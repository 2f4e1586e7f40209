package initramfs

import "testing"

// TestBoardsLoadTheirWatchdog: every board's initramfs loads its hardware
// watchdog's driver first, so that pibake-init can arm it before anything
// else can hang (and, on a Pi, reboot at all: bcm2835_wdt is the kernel's
// restart handler there).
func TestBoardsLoadTheirWatchdog(t *testing.T) {
	for board, driver := range map[string]string{"qemu": "i6300esb", "pi3": "bcm2835_wdt", "pi4": "bcm2835_wdt", "pi5": "bcm2835_wdt"} {
		if mods := Modules[board]; len(mods) == 0 || mods[0] != driver {
			t.Errorf("%s loads %v, want %s first", board, mods, driver)
		}
	}
	for board := range Modules {
		if WatchdogModules[board] == "" {
			t.Errorf("board %s has no watchdog driver", board)
		}
	}
}
