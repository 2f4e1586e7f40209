package system

import (
	"strings"
	"testing"
)

// TestWatchdogDropIn: every image, with or without the agent or sshd,
// has systemd feed the hardware watchdog the init armed, with a timeout
// the Pi's bcm2835_wdt takes (the kernel's watchdog core pings its 16 s
// hardware for longer timeouts) and within the init's 60 s handover.
func TestWatchdogDropIn(t *testing.T) {
	for _, c := range []struct{ ssh, updater bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		var conf string
		for _, f := range Files(3, c.ssh, c.updater) {
			if f.Path == "/usr/lib/systemd/system.conf.d/50-pibake-watchdog.conf" {
				conf = string(f.Data)
			}
		}
		if conf == "" {
			t.Errorf("sshd %v, agent %v: no system.conf drop-in for the watchdog", c.ssh, c.updater)
			continue
		}
		if !strings.Contains(conf, "\n[Manager]\nRuntimeWatchdogSec=30s\n") {
			t.Errorf("the drop-in does not set RuntimeWatchdogSec in [Manager]:\n%s", conf)
		}
	}
}
