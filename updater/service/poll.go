package service

// When the service polls next: the configured interval with a jitter of
// ±10% that is the device's own (a hash of its id and the turn), so that
// a fleet started together does not poll together; never sooner than a
// busy server asked (Retry-After, bounded by install.MaxRetryAfter); and,
// while an installed release waits for its window, at the window's
// opening (plus the device's share of the first 10 minutes, or of the
// interval if shorter) if that comes before the next poll.

import (
	"errors"
	"strconv"
	"time"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// FirstPoll is how long after its start the service polls first, at the
// soonest.
const FirstPoll = time.Minute

// FirstPollAfter is how long after its start the service polls first:
// FirstPoll plus the device's own share of a fifth of the interval (as
// wide as NextPoll's ±10%), the same at every boot, so that devices
// powered on together (a site whose power came back) do not all poll in
// one minute: at the default 15 minutes, between 1 and 4 minutes.
func FirstPollAfter(poll time.Duration, deviceID string) time.Duration {
	return FirstPoll + time.Duration(float64(poll)/5*agent.Place(deviceID, "first"))
}

// NextPoll is how long to wait after the poll numbered turn (the first
// is 1), which ended with err (the agent's Update's); waiting is the
// release that waits, if any (the state's, when err is
// agent.ErrWaiting). The service's loop and the fleet simulation
// (internal/fleetsim) schedule polls with it.
func NextPoll(poll time.Duration, deviceID string, turn int, err error, waiting *state.Waiting, now time.Time) time.Duration {
	d := time.Duration(float64(poll) * (0.9 + 0.2*agent.Place(deviceID, "poll/"+strconv.Itoa(turn))))
	if after, ok := install.RetryAfter(err); ok {
		return max(d, after)
	}
	if errors.Is(err, agent.ErrWaiting) && waiting != nil && !waiting.Next.IsZero() {
		spread := time.Duration(float64(min(poll, 10*time.Minute)) * agent.Place(deviceID, "window"))
		if at := waiting.Next.Sub(now) + spread; at < d {
			return max(at, time.Second)
		}
	}
	return d
}
