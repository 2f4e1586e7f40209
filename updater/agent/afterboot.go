package agent

// After a boot: a pending trial is committed or failed, the running slot
// confirmed, or the device found degraded (AfterBoot); Rollback goes back
// to the other slot by hand.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/state"
)

// AfterBoot settles a pending trial, or confirms the running slot.
func (a *Agent) AfterBoot(ctx context.Context) error {
	st, err := a.load(ctx)
	if err != nil {
		return err
	}
	if st.Trial == nil {
		return a.settle(st)
	}
	tr := *st.Trial
	if bootchain.Slot(tr.Slot) != a.Booted {
		return a.trialDidNotRun(st, tr)
	}
	// The trial came up: say so before the checks, so that a cut during
	// them is retried rather than taken for a boot that failed.
	st.Trial.Boots++
	if err := a.Store.Save(st); err != nil {
		return err
	}
	if name, err := a.health(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // stopped (shutdown): not a verdict on the release
		}
		return a.fail(st, tr, "health", name, err, true)
	}
	ch := tr.Release.Channel
	if ch == "" {
		ch = a.Channel
	}
	// This agent runs as the committed slot: the state is authenticated
	// from here on (seal).
	if _, err := a.seal(); err != nil {
		return err
	}
	if err := a.Boot.MarkGood(a.Booted); err != nil {
		return err
	}
	if st.Slots == nil {
		st.Slots = map[string]state.Release{}
	}
	if st.Serials == nil {
		st.Serials = map[string]uint64{}
	}
	st.Slots[tr.Slot] = tr.Release
	st.Serials[ch] = max(st.Serials[ch], tr.Release.Serial)
	st.Committed = tr.Slot
	st.Degraded = ""
	st.Trial = nil
	st.Download = nil
	st.LastError = ""
	a.log().Info("committed", "version", tr.Release.Version, "slot", tr.Slot)
	if err := a.Store.Save(st); err != nil {
		return err
	}
	// Then bootsel keeps the release's document, the floor a lost state
	// cannot lower. Never before the commit: a floor above the state's
	// would refuse the trial's own release when it is tried again. A cut
	// here is caught up by the next check of the channel (verify).
	if err := a.keepSigned(ch, tr.Signed); err != nil {
		a.log().Warn("cannot keep the committed release's document on bootsel", "err", err)
	}
	return nil
}

// settle confirms the running slot when no trial is pending. The boot
// state must offer only slots the state vouches for (a slot in st.Slots
// holds a verified release that was committed or flashed):
//   - running a slot it cannot vouch for while the other one is vouched
//     for (the boot state was lost or edited by hand) is never confirmed:
//     back to the other slot;
//   - running a slot other than the committed one means the committed
//     slot used up its tries: the device is degraded until it has
//     reinstalled the channel's release;
//   - the other slot, unless vouched for, is kept out of the rotation.
func (a *Agent) settle(st state.State) error {
	booted, other := string(a.Booted), string(a.Booted.Other())
	vouched := func(s string) bool { _, ok := st.Slots[s]; return ok }
	if st.Committed != "" && !vouched(booted) && vouched(other) {
		a.log().Error("running a slot that holds no verified release; going back to the one that does", "slot", booted)
		if err := a.Boot.MarkGood(a.Booted.Other()); err != nil {
			return err
		}
		if err := a.Boot.MarkBad(a.Booted); err != nil {
			return err
		}
		return a.Reboot()
	}
	if st.Committed != "" && st.Committed != booted {
		broken := st.Committed
		what := "its release"
		if r, ok := st.Slots[broken]; ok {
			what = r.Image + " " + r.Version
		}
		st.Degraded = fmt.Sprintf("running the fallback slot %s: slot %s (%s) did not boot; reinstalling the channel's release", booted, broken, what)
		delete(st.Slots, broken)
		st.Committed = booted
		a.log().Warn("degraded", "why", st.Degraded)
		if err := a.Store.Save(st); err != nil {
			return err
		}
	}
	if err := a.Boot.MarkGood(a.Booted); err != nil {
		return err
	}
	// This agent runs as the committed slot (or is about to record it as
	// such): from here on the state is authenticated.
	if made, err := a.seal(); err != nil {
		return err
	} else if made && st.Committed != "" {
		if err := a.Store.Save(st); err != nil {
			return err
		}
	}
	if st.Committed != "" {
		if !vouched(other) {
			return a.Boot.MarkBad(a.Booted.Other())
		}
		return nil
	}
	// First boot of this state: the slot the image was flashed with. A
	// fresh device holds the flashed image in both slots; a state that has
	// seen installs (converted from format 1) vouches only for this one.
	st.Committed = booted
	if st.Slots == nil {
		st.Slots = map[string]state.Release{}
	}
	flashed := state.Release{Image: a.Image, Version: state.AsFlashed}
	fresh := len(st.Slots) == 0 && st.Download == nil && len(st.Failed) == 0
	if _, ok := st.Slots[booted]; !ok {
		st.Slots[booted] = flashed
	}
	if fresh {
		st.Slots[string(a.Booted.Other())] = flashed
	}
	return a.Store.Save(st)
}

// trialDidNotRun: a trial is pending but the other slot is running.
func (a *Agent) trialDidNotRun(st state.State, tr state.Trial) error {
	ev, err := a.Boot.Tried(bootchain.Slot(tr.Slot))
	if err != nil {
		ev = bootchain.Unknown
	}
	if st.Download == nil {
		st.Download = &state.Download{Serial: tr.Release.Serial, Slot: tr.Slot}
	}
	switch {
	case tr.Boots > 0:
		// It came up before and was cut short during its checks.
		st.Download.Interrupted++
		if st.Download.Interrupted >= MaxInterrupted {
			return a.fail(st, tr, "health", "", fmt.Errorf("the trial was cut short %d times before its health checks ended", st.Download.Interrupted), false)
		}
	case ev == bootchain.Yes || (ev == bootchain.Unknown && tr.Armed):
		// The boot loader spent the trial (U-Boot's counter shows it; the
		// tryboot flag leaves no trace, but the trial was armed) and the
		// trial never came up far enough to say so. That is a release
		// that does not boot, or a power cut in its first seconds: one
		// such fallback is retried, the second is a failure.
		st.Download.Unbooted++
		if st.Download.Unbooted >= 2 {
			return a.fail(st, tr, "boot", "", fmt.Errorf("slot %s did not come up in %d trial boots; the boot loader started slot %s again", tr.Slot, st.Download.Unbooted, a.Booted), false)
		}
	}
	// Never armed, or interrupted: the next poll verifies the written
	// slot again and arms it; the slot stays out of the rotation.
	why := "the boot loader was never armed"
	switch {
	case tr.Boots > 0:
		why = "the trial came up but was cut short before its health checks ended"
	case ev == bootchain.Yes || tr.Armed:
		why = "the trial did not come up (once; a second time fails the release)"
	}
	a.log().Warn("trial will be tried again", "version", tr.Release.Version, "slot", tr.Slot, "why", why)
	st.Trial = nil
	if err := a.Boot.MarkBad(bootchain.Slot(tr.Slot)); err != nil {
		return err
	}
	if err := a.Boot.MarkGood(a.Booted); err != nil {
		return err
	}
	return a.Store.Save(st)
}

// fail records a release that really failed, then takes its slot out of
// the rotation (in that order: a cut between the two leaves a recorded
// failure whose slot U-Boot has no try left for).
func (a *Agent) fail(st state.State, tr state.Trial, stage, check string, cause error, reboot bool) error {
	if st.Failed == nil {
		st.Failed = map[string]state.Failure{}
	}
	st.Failed[tr.Release.Version] = state.Failure{Image: tr.Release.Image, Version: tr.Release.Version, Serial: tr.Release.Serial, Stage: stage, Check: check, Reason: cause.Error(), At: a.now()}
	st.Trial = nil
	st.Download = nil
	delete(st.Slots, tr.Slot)
	st.LastError = fmt.Sprintf("%s %s rolled back: %s", tr.Release.Image, tr.Release.Version, cause)
	if err := a.Store.Save(st); err != nil {
		return err
	}
	if err := a.Boot.MarkBad(bootchain.Slot(tr.Slot)); err != nil {
		return err
	}
	a.log().Warn("trial failed", "version", tr.Release.Version, "stage", stage, "check", check, "err", cause)
	if reboot {
		return a.Reboot()
	}
	return a.Boot.MarkGood(a.Booted)
}

// health runs every check within the deadline; the first failure wins.
func (a *Agent) health(ctx context.Context) (string, error) {
	d := a.Deadline
	if d <= 0 {
		d = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for _, c := range a.Checks {
		if err := c.Run(ctx); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("deadline of %s passed: %w", d, err)
			}
			return c.Name(), fmt.Errorf("%w: %s: %v", ErrHealth, c.Name(), err)
		}
	}
	return "", nil
}

// ErrNoFallback means the other slot holds nothing verified to go back to.
var ErrNoFallback = errors.New("the other slot holds no verified release to go back to")

// Rollback abandons the running slot for the other one and reboots, only
// if the other slot holds a release that was verified and committed (or
// flashed) and the boot loader still starts it.
func (a *Agent) Rollback(ctx context.Context) error {
	st, err := a.load(ctx)
	if err != nil {
		return err
	}
	other := a.Booted.Other()
	if _, ok := st.Slots[string(other)]; !ok || (st.Download != nil && st.Download.Slot == string(other)) || (st.Trial != nil && st.Trial.Slot == string(other)) {
		return fmt.Errorf("slot %s: %w", other, ErrNoFallback)
	}
	if err := a.Boot.MarkGood(other); err != nil {
		return err
	}
	st.Committed = string(other)
	if err := a.Store.Save(st); err != nil {
		return err
	}
	return a.Reboot()
}
