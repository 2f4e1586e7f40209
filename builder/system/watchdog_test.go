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
			if f.Path == WatchdogDropIn {
				conf = string(f.Data)
			}
		}
		if conf == "" {
			t.Errorf("sshd %v, agent %v: no %s", c.ssh, c.updater, WatchdogDropIn)
			continue
		}
		if !strings.Contains(conf, "\n[Manager]\nRuntimeWatchdogSec=30s\n") {
			t.Errorf("%s does not set RuntimeWatchdogSec in [Manager]:\n%s", WatchdogDropIn, conf)
		}
	}
	if !strings.HasPrefix(WatchdogDropIn, "/usr/lib/systemd/system.conf.d/") || !strings.HasSuffix(WatchdogDropIn, ".conf") {
		t.Errorf("%s is not where systemd reads its vendor drop-ins", WatchdogDropIn)
	}
}
