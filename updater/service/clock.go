package service

import (
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// timeError is adjtimex(2)'s TIME_ERROR: the kernel's clock is not
// synchronised. timesyncd (or any NTP client) clears it when it sets the
// clock; systemd-time-wait-sync waits on the same flag.
const timeError = 5

// kernelClockSynced reports whether the kernel says its clock is synchronised.
func kernelClockSynced() bool {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	return err == nil && state != timeError
}

// clockGate holds back the first check of the channel until the clock is
// synchronised or the wait is over, whichever comes first, so that a Pi
// without an RTC does not judge a document's expiry by a clock that
// starts at the image's build time. It never waits for ever.
type clockGate struct {
	until          time.Time
	synced         func() bool
	waited, warned bool
}

func newClockGate(now time.Time, wait time.Duration, synced func() bool) *clockGate {
	return &clockGate{until: now.Add(wait), synced: synced}
}

// hold returns how long to wait before checking the channel, 0 for now.
func (g *clockGate) hold(now time.Time, log *slog.Logger) time.Duration {
	if g.synced() {
		if g.waited && !g.warned {
			log.Info("clock synchronised", "clock", now.UTC().Format(time.RFC3339))
			g.warned = true // said once, either way
		}
		return 0
	}
	if left := g.until.Sub(now); left > 0 {
		if !g.waited {
			log.Info("waiting for a synchronised clock before checking the channel", "at most", left.Round(time.Second))
			g.waited = true
		}
		return min(2*time.Second, left)
	}
	if !g.warned {
		log.Warn("the clock is not synchronised (no time server answered): checking the channel anyway, judging expiry against the later of the clock and the image's build time",
			"clock", now.UTC().Format(time.RFC3339))
		g.warned = true
	}
	return 0
}
