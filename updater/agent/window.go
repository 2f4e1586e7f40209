package agent

// Download now, apply later: a release written and verified into the
// other slot waits (state.Waiting) until the maintenance window is open
// and no application inhibits the reboot, or the inhibits have held it
// for their maximum delay. Waiting only delays: the agent arms a slot
// only right after it verified the channel's current document and read
// the slot back against it (install), so a release the channel no
// longer offers is never armed, and nothing an application holds can
// change what is installed.

import (
	"errors"
	"strings"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/state"
)

// Schedule is when the device may reboot into a release it installed
// (config.Window).
type Schedule interface {
	Open(t time.Time) bool
	// Next is the first instant at or after t when it is open; zero if
	// never.
	Next(t time.Time) time.Time
}

// ErrWaiting means the release is installed and verified and waits for
// the window or an inhibit; status says which and until when.
var ErrWaiting = errors.New("installed and verified; waiting to apply it")

// DefaultMaxInhibit is Config.MaxInhibit when it is zero.
const DefaultMaxInhibit = 24 * time.Hour

// due says whether the release w describes may be armed now. It updates
// w: why it waits, the window's next opening, when an inhibit first
// held it.
func (a *Agent) due(w *state.Waiting) bool {
	now, log := a.now(), a.log()
	w.Why, w.Next = "", time.Time{}
	switch {
	case a.Window == nil:
	case !now.After(a.Built):
		// The clock reads before the image was built: it was never set
		// (the rule expiry uses), so the time of day is unknown. Waiting
		// for a window such a clock cannot find could last for ever:
		// the release is applied now.
		log.Warn("the clock was never set (it reads before the image's build time): the maintenance window cannot be judged; applying now",
			"clock", now.UTC().Format(time.RFC3339), "version", w.Release.Version)
	case !a.Window.Open(now):
		w.Why, w.Next = "outside the maintenance window", a.Window.Next(now)
		return false
	}
	if a.Inhibitors == nil {
		return true
	}
	who := a.Inhibitors()
	if len(who) == 0 {
		return true
	}
	if w.Inhibited.IsZero() || w.Inhibited.After(now) { // a clock set back restarts the count
		w.Inhibited = now
	}
	bound := a.MaxInhibit
	if bound <= 0 {
		bound = DefaultMaxInhibit
	}
	if held := now.Sub(w.Inhibited); held >= bound {
		log.Warn("applying despite inhibits: they have held this release for their maximum delay",
			"version", w.Release.Version, "held", held.Round(time.Second), "max", bound, "by", strings.Join(who, ", "))
		return true
	}
	w.Why = "inhibited by " + strings.Join(who, ", ")
	return false
}

// hold records why the release st.Waiting names waits and returns
// ErrWaiting, or returns nil when it is due.
func (a *Agent) hold(st state.State) error {
	if a.due(st.Waiting) {
		return nil
	}
	st.LastCheck, st.LastError = a.now(), ""
	if err := a.Store.Save(st); err != nil {
		return err
	}
	a.log().Info("installed, waiting", "version", st.Waiting.Release.Version, "slot", st.Waiting.Slot, "why", st.Waiting.Why,
		"next", st.Waiting.Next.UTC().Format(time.RFC3339))
	return ErrWaiting
}

// Immediate is a copy of a that applies what it installs at once: the
// operator's own install, or `pibake-updater apply`, ignores the window
// and the inhibits (they only ever delay the service's own updates).
func (a *Agent) Immediate() *Agent {
	b := *a
	b.Window, b.Inhibitors = nil, nil
	return &b
}

// stillWaiting handles a release that waited, before anything is read
// again: one the channel no longer offers (another version, another
// slot) is dropped and never armed; one still offered returns ErrWaiting
// while it is not due, nil when it is (install then verifies the slot
// again and arms it).
func (a *Agent) stillWaiting(st *state.State, doc *channel.Document, target bootchain.Slot) error {
	w := st.Waiting
	if w == nil {
		return nil
	}
	if w.Release.Image != doc.Image || w.Release.Version != doc.Version || w.Slot != string(target) {
		a.log().Info("the channel no longer offers the release that waited: it is not applied", "waited", w.Release.Version, "offered", doc.Version)
		st.Waiting = nil
		return nil
	}
	w.Release.Serial = doc.Serial // re-published (a wider rollout): the same release
	return a.hold(*st)
}

// ready is the step between "installed and verified" and arming: the
// release is recorded as waiting and held back until it is due, judged
// again after the read-back (the window may have closed, an inhibit been
// taken meanwhile). moved is what the install moved; a release that
// waited keeps the figures of the run that downloaded it (the run that
// applies it only verified).
func (a *Agent) ready(st *state.State, doc *channel.Document, target bootchain.Slot, moved *state.Transfer) (*state.Transfer, error) {
	switch {
	case st.Waiting != nil:
		if m := st.LastInstall; m != nil && m.Version == doc.Version {
			moved = m
		}
	case a.Window == nil && a.Inhibitors == nil:
		return moved, nil // nothing can hold it
	default:
		rel := state.Release{Image: doc.Image, Version: doc.Version, Serial: doc.Serial, Channel: doc.Channel}
		st.Waiting = &state.Waiting{Release: rel, Slot: string(target), Since: a.now()}
		st.LastInstall = moved
	}
	return moved, a.hold(*st)
}
