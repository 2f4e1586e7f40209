package bootinit

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeWatchdog models a kernel watchdog device as the core presents it:
// a timeout the driver may clamp to its range, keepalives counted, and
// whether a close without 'V' leaves it running.
type fakeWatchdog struct {
	mu         sync.Mutex
	max        time.Duration // the driver's largest timeout; 0 for none
	magic      bool
	setErr     error
	feedErr    error
	timeout    time.Duration
	keepalives int
}

func (f *fakeWatchdog) MagicClose() (bool, error) { return f.magic, nil }

func (f *fakeWatchdog) SetTimeout(d time.Duration) (time.Duration, error) {
	if f.setErr != nil {
		return 0, f.setErr
	}
	if f.max > 0 && d > f.max {
		d = f.max
	}
	f.timeout = d
	return d, nil
}

func (f *fakeWatchdog) Keepalive() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keepalives++
	return f.feedErr
}

func (f *fakeWatchdog) fed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keepalives
}

func TestArm(t *testing.T) {
	for _, tc := range []struct {
		name    string
		w       *fakeWatchdog
		timeout time.Duration // what the device is left with
		say     string        // in the console message
		err     string        // "" for none
	}{
		{"handed over", &fakeWatchdog{magic: true}, WatchdogTimeout, "armed for 60 s: fed by the init for at most 10m0s, then handed to systemd armed", ""},
		{"driver clamps the timeout", &fakeWatchdog{magic: true, max: 15 * time.Second}, 15 * time.Second, "armed for 15 s:", ""},
		{"stops on any close", &fakeWatchdog{}, WatchdogTimeout, "guards the init only", "cannot be handed to systemd"},
		{"timeout refused", &fakeWatchdog{magic: true, setErr: errors.New("EINVAL")}, 0, "driver's timeout", "set a 60 s timeout: EINVAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := arm(tc.w, WatchdogTimeout)
			if tc.w.timeout != tc.timeout {
				t.Errorf("timeout %s, want %s", tc.w.timeout, tc.timeout)
			}
			if !strings.Contains(msg, tc.say) {
				t.Errorf("message %q, want it to say %q", msg, tc.say)
			}
			if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
		})
	}
}

// TestFeedStops: the init feeds the watchdog until its budget is spent,
// then stops, so that an init that hangs is reset; a wait meant to last
// (two disks with the image's signature) holds the budget back.
func TestFeedStops(t *testing.T) {
	for _, holds := range []int{0, 2} {
		w := &fakeWatchdog{magic: true}
		asked := 0
		start := time.Now()
		feed(w, time.Millisecond, 30*time.Millisecond, func() bool { asked++; return asked <= holds }, func(err error) { t.Error(err) })
		took := time.Since(start)
		if asked != holds+1 {
			t.Errorf("hold asked %d times, want %d", asked, holds+1)
		}
		if want := time.Duration(holds+1) * 30 * time.Millisecond; took < want {
			t.Errorf("%d holds: fed for %s, want at least %s", holds, took, want)
		}
		if w.fed() < 3 {
			t.Errorf("%d holds: fed %d times in %s at an interval of 1 ms", holds, w.fed(), took)
		}
		n := w.fed()
		time.Sleep(20 * time.Millisecond)
		if w.fed() != n {
			t.Errorf("fed %d more times after the budget was spent", w.fed()-n)
		}
	}
}

// TestFeedReportsOnce: a keepalive that keeps failing is reported once,
// not every interval.
func TestFeedReportsOnce(t *testing.T) {
	w := &fakeWatchdog{magic: true, feedErr: errors.New("EIO")}
	reports := 0
	feed(w, time.Millisecond, 30*time.Millisecond, func() bool { return false }, func(error) { reports++ })
	if w.fed() < 3 || reports != 1 {
		t.Errorf("%d reports of %d failing keepalives, want 1", reports, w.fed())
	}
}

func TestWatchdogTurnedOff(t *testing.T) {
	for cmdline, off := range map[string]bool{
		"console=ttyS1,115200 panic=10 systemd.watchdog_sec=off root=PARTUUID=1-05": true,
		"systemd.watchdog_sec=off\n":                  true,
		"console=ttyAMA0 panic=10 root=PARTUUID=1-05": false,
		"systemd.watchdog_sec=30s":                    false,
		"xsystemd.watchdog_sec=off":                   false,
	} {
		if got := watchdogTurnedOff(cmdline); got != off {
			t.Errorf("watchdogTurnedOff(%q) = %v", cmdline, got)
		}
	}
}

// TestHandOver: at the switch the init leaves systemd HandoverTimeout to
// open the watchdog, not the 60 s of its own phase: a loaded host's guest
// took more than 60 s once, and the watchdog reset a healthy trial boot
// (seen in the update story on 2026-12-07).
func TestHandOver(t *testing.T) {
	for _, tc := range []struct {
		name    string
		w       *fakeWatchdog
		timeout time.Duration
		say     string
	}{
		{"handed over", &fakeWatchdog{magic: true, timeout: WatchdogTimeout}, HandoverTimeout, "systemd has 120 s to take it over"},
		{"driver clamps the timeout", &fakeWatchdog{magic: true, timeout: 15 * time.Second, max: 15 * time.Second}, 15 * time.Second, "systemd has 15 s"},
		{"driver refuses", &fakeWatchdog{magic: true, timeout: WatchdogTimeout, setErr: errors.New("EINVAL")}, WatchdogTimeout, "systemd has the init's 60 s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			handOver(tc.w, initLog{w: &out})
			if tc.w.timeout != tc.timeout {
				t.Errorf("timeout left for systemd: %s, want %s", tc.w.timeout, tc.timeout)
			}
			if !strings.Contains(out.String(), tc.say) {
				t.Errorf("console %q, want %q", out.String(), tc.say)
			}
		})
	}
	var out strings.Builder
	handOver(nil, initLog{w: &out}) // nothing armed: nothing to say
	if out.Len() != 0 {
		t.Errorf("nothing armed, yet: %q", out.String())
	}
}
