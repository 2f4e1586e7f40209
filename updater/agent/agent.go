// Package agent is the updater's state machine, free of any device detail:
// the boot loader, the state store, the repository, the slot partitions,
// the health checks and the reboot are all injected, so the whole machine
// runs against fakes in tests (including a power cut at every write).
//
// The promise: the device never boots bytes it has not verified, never
// loses a good release, and never blacklists a release that did not fail.
//
//	Update:    fetch and verify the channel document (bound to the channel
//	           and image asked for; nothing else is read before it
//	           verifies) → take the inactive slot out of the boot loader's
//	           rotation (MarkBad) and forget what it held → write every
//	           artifact, hashing, and read it back → record the trial
//	           (not armed) → boot loader: try that slot once → record it
//	           armed → reboot.
//	AfterBoot: booted the trial slot → count the boot → health checks
//	           within a deadline → all pass: commit (mark it good, record
//	           the channel's serial); a check fails: record the release as
//	           failed, mark it bad, reboot into the old slot.
//	           Booted the other slot while a trial was pending → failed
//	           only if the boot loader really tried the trial slot twice
//	           and it never came up (once may be a power cut in its first
//	           seconds); a trial never armed is armed again; one cut short
//	           after it came up is retried (MaxInterrupted times).
//	           Booted a slot other than the committed one with no trial →
//	           the committed slot failed its tries: the device is degraded,
//	           says so, and reinstalls the channel's release.
package agent

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/delta"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// MaxInterrupted is how many times a trial that came up may be cut short
// (a power cut, a crash, a watchdog reset during its health checks) before
// the release is recorded as failed.
const MaxInterrupted = 3

// Check is one health check.
type Check interface {
	Name() string
	Run(ctx context.Context) error
}

// Slots opens the boot and root partitions of a slot for writing.
type Slots func(s bootchain.Slot) (boot, root install.Target, err error)

// Agent ties the parts together.
type Agent struct {
	Boot    bootloader.Bootloader
	Store   state.Store
	Source  install.Source
	Channel string
	Image   string // the image this device runs; documents of others are refused
	// Version is the version of the image as flashed (the image's own
	// updater.yaml): a device flashed with the release its channel
	// offers records that release instead of installing it again.
	Version  string
	Trusted  []minisign.PublicKey
	Revoked  []uint64 // key IDs refused even if trusted
	Board    string
	Booted   bootchain.Slot
	Slots    Slots
	Checks   []Check
	Deadline time.Duration // for all health checks together
	Reboot   func() error
	// RebootTrial, if set, replaces Reboot for the reboot into a trial
	// (the tryboot chain needs the firmware's one-shot flag on it).
	RebootTrial func() error
	Now         func() time.Time
	// PeakRSS, if set, reports the process's peak resident memory in
	// bytes, recorded with each install.
	PeakRSS func() int64
	// Built is the image's build time: a clock that reads earlier (a Pi
	// without RTC before time sync, at 1970) is not trusted for expiry.
	Built   time.Time
	Log     *slog.Logger
	Install install.Options
	// Running, if set, opens the booted slot's partitions for reading:
	// an artifact the channel's chunk document lists is then written from
	// the chunks they hold plus range requests for the rest (delta
	// updates), falling back to the full download on any failure.
	Running Running
	// DeltaPolicy merges range requests; zero is delta.DefaultPolicy.
	DeltaPolicy delta.Policy
	// DeviceID places this device in a release's rollout (the machine-id).
	DeviceID string
}

// Errors of the agent itself.
var (
	ErrFailedBefore = errors.New("this version failed before and is not retried")
	ErrHealth       = errors.New("health check failed")
	ErrNothingNew   = errors.New("no new release")
	ErrNotInRollout = errors.New("this device is not in the release's rollout yet")
)

// InRollout reports whether a device takes a release offered to the
// fraction rollout of the fleet: the device's place, a hash of its id and
// the release (image and version, not the serial, which changes when the
// release is re-published with a higher fraction), is uniform in [0, 1)
// and stable for that release, so raising the fraction only adds devices.
func InRollout(deviceID string, release string, rollout float64) bool {
	if rollout >= 1 {
		return true
	}
	sum := sha256.Sum256([]byte(deviceID + "/" + release))
	place := float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
	return place < rollout
}

func (a *Agent) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *Agent) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// FetchTimeout bounds reading the channel document and its signature.
const FetchTimeout = 2 * time.Minute

func readAll(ctx context.Context, src install.Source, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	r, err := src.Open(ctx, path, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, channel.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// Load reads the state. An unreadable state file has been set aside by
// the store: the agent logs it and starts from the empty state (the
// running slot is then marked good), never stopping on it.
func (a *Agent) Load() (state.State, error) {
	st, err := a.Store.Load()
	if errors.Is(err, state.ErrCorrupt) {
		a.log().Warn("starting from an empty state", "err", err)
		st, err = state.State{Format: state.Format}, nil
	}
	if err != nil {
		return st, err
	}
	st.Upgrade(a.Channel)
	return st, nil
}

// degraded: the device runs a fallback (Degraded) and reinstalls the
// channel's release, serial equal to the committed one included.
func degraded(st state.State) bool { return st.Degraded != "" }

// Fetch reads and verifies the channel document against this channel's
// last committed serial.
func (a *Agent) Fetch(ctx context.Context, st state.State) (*channel.Document, error) {
	base := channel.DocumentPath(a.Channel)
	doc, err := readAll(ctx, a.Source, base)
	if err != nil {
		return nil, fmt.Errorf("channel %s from %s: %w", a.Channel, a.Source, err)
	}
	sig, err := readAll(ctx, a.Source, channel.SignaturePath(base))
	if err != nil {
		return nil, fmt.Errorf("channel %s signature from %s: %w", a.Channel, a.Source, err)
	}
	d, err := channel.Verify(doc, sig, channel.Check{Trusted: a.Trusted, Board: a.Board, Channel: a.Channel, Image: a.Image, Revoked: a.Revoked,
		Now: a.expiryClock(), LastSerial: st.Serials[a.Channel], Reinstall: degraded(st)})
	if errors.Is(err, channel.ErrExpired) {
		err = fmt.Errorf("%w (this device's clock reads %s: if it is wrong, the document is refused until time sync sets it)", err, a.now().UTC().Format(time.RFC3339))
	}
	return d, err
}

// expiryClock is the time expiry is judged at: the clock, or the image's
// build time when the clock reads earlier (it was never set). A clock
// ahead refuses documents until it is corrected; nothing of it is kept.
func (a *Agent) expiryClock() time.Time {
	if now := a.now(); now.After(a.Built) {
		return now
	}
	return a.Built
}

// Update installs the channel's release into the inactive slot and reboots
// into it for a trial. It returns ErrNothingNew when the channel offers
// nothing newer; every refusal is also recorded in the state.
func (a *Agent) Update(ctx context.Context) error {
	st, err := a.Load()
	if err != nil {
		return err
	}
	if st.Trial != nil {
		if st.Trial.Armed {
			return fmt.Errorf("a trial of %s in slot %s is pending: reboot first", st.Trial.Release.Version, st.Trial.Slot)
		}
		// Recorded, but the boot loader was never told: install again
		// (the written artifacts are verified, not downloaded again).
		st.Trial = nil
	}
	doc, err := a.Fetch(ctx, st)
	if errors.Is(err, channel.ErrReplay) {
		return ErrNothingNew
	}
	if err != nil {
		return a.refuse(st, "verify", err)
	}
	if a.adopt(ctx, st, doc) {
		return ErrNothingNew
	}
	return a.install(ctx, st, doc)
}

// adopt is for a device that runs, as flashed, the very release its
// channel offers (the fleet was flashed with the image that was then
// published): it records that release for the booted slot instead of
// installing it into the other slot and rebooting into it. Only when the
// booted partitions hold the channel's artifacts byte for byte (one read
// of each, hashed); anything else installs as usual.
func (a *Agent) adopt(ctx context.Context, st state.State, doc *channel.Document) bool {
	cur, ok := st.Slots[string(a.Booted)]
	if !ok || cur.Serial != 0 || a.Version == "" || doc.Version != a.Version || doc.Image != a.Image || a.Running == nil || degraded(st) {
		return false
	}
	log := a.log()
	arts, err := slotArtifacts(doc, a.Booted)
	if err != nil {
		return false
	}
	boot, root, err := a.Running(a.Booted)
	if err != nil {
		log.Warn("cannot read the running slot to compare it with the channel's release", "err", err)
		return false
	}
	defer closeAll(boot, root)
	for _, art := range arts {
		var r Readable = boot
		if art.Name == "root" {
			r = root
		}
		// The read-back every install ends with, on the running slot.
		if err := install.Verify(ctx, art, beatReader{r, a.Install.Beat}); err != nil {
			log.Info("the channel offers the version this device was flashed with, but other bytes: installing it", "version", doc.Version, "artifact", art.Name, "err", err)
			return false
		}
	}
	st.Slots[string(a.Booted)] = state.Release{Image: doc.Image, Version: doc.Version, Serial: doc.Serial, Channel: a.Channel}
	if st.Serials == nil {
		st.Serials = map[string]uint64{}
	}
	st.Serials[a.Channel] = doc.Serial
	st.LastCheck, st.LastError = a.now(), ""
	if err := a.Store.Save(st); err != nil {
		log.Warn("cannot record the channel's release as the running one", "err", err)
		return false
	}
	log.Info("the channel's release is the one this device runs: recorded, nothing to install", "version", doc.Version, "serial", doc.Serial, "slot", a.Booted)
	return true
}

// InstallFrom installs from another source (a file or USB stick) with the
// same verification.
func (a *Agent) InstallFrom(ctx context.Context, src install.Source) error {
	b := *a
	b.Source = src
	return b.Update(ctx)
}

func (a *Agent) install(ctx context.Context, st state.State, doc *channel.Document) error {
	if !InRollout(a.DeviceID, doc.Image+"/"+doc.Version, doc.Rollout) {
		st.LastError = fmt.Sprintf("%s %s: %v (rollout %.0f%%)", doc.Image, doc.Version, ErrNotInRollout, doc.Rollout*100)
		st.LastCheck = a.now()
		_ = a.Store.Save(st)
		return ErrNotInRollout
	}
	if f, ok := st.Failed[doc.Version]; ok {
		st.LastError = fmt.Sprintf("%s %s: %v (%s: %s)", doc.Image, doc.Version, ErrFailedBefore, f.Stage, f.Reason)
		st.LastCheck = a.now()
		_ = a.Store.Save(st)
		return fmt.Errorf("%s: %w", doc.Version, ErrFailedBefore)
	}
	target := a.Booted.Other()
	arts, err := slotArtifacts(doc, target)
	if err != nil {
		return a.refuse(st, "verify", err)
	}
	log := a.log()
	dl := st.Download
	if dl == nil || dl.Serial != doc.Serial || dl.Slot != string(target) {
		dl = &state.Download{Serial: doc.Serial, Slot: string(target)}
	}
	// The slot stops being a fallback before its first byte changes: the
	// state forgets what it held, then the boot loader stops starting it.
	delete(st.Slots, string(target))
	st.Download = dl
	if err := a.Store.Save(st); err != nil {
		return err
	}
	if err := a.Boot.MarkBad(target); err != nil {
		return a.refuse(st, "write", fmt.Errorf("take slot %s out of the boot rotation: %w", target, err))
	}
	bootT, rootT, err := a.Slots(target)
	if err != nil {
		return a.refuse(st, "write", err)
	}
	defer func() {
		for _, t := range []install.Target{bootT, rootT} {
			if c, ok := t.(io.Closer); ok {
				_ = c.Close()
			}
		}
	}()
	log.Info("installing", "image", doc.Image, "version", doc.Version, "serial", doc.Serial, "slot", target)
	moved := &state.Transfer{Version: doc.Version}
	started := a.now()
	for _, art := range arts {
		moved.Full += art.Size
	}
	var dx *deltaInstall // prepared at the first artifact that is not written yet
	prepared := false
	defer func() {
		if dx != nil {
			dx.close()
		}
	}()
	for _, art := range arts {
		t := rootT
		if art.Name != "root" {
			t = bootT
		}
		if slices.Contains(dl.Done, art.SHA256) {
			// Written before a restart: trusted only once it verifies again.
			if err := install.Verify(ctx, art, t); err == nil {
				log.Info("artifact already written and verified", "artifact", art.Name)
				continue
			}
			dl.Done = slices.DeleteFunc(dl.Done, func(s string) bool { return s == art.SHA256 })
		}
		o := a.Install
		o.Log = log
		if dl.Current == art.SHA256 {
			o.Resume = dl.Offset
		}
		dl.Current, dl.Offset = art.SHA256, o.Resume
		o.Progress = func(written int64) error {
			dl.Offset = written
			st.Download = dl
			return a.Store.Save(st)
		}
		if !prepared {
			dx, prepared = a.prepareDelta(ctx, doc, arts), true
		}
		dres, done, resume, err := a.writeDelta(ctx, dx, art, t, o)
		n := dres.Fetched
		moved.Downloaded += dres.Fetched
		if done || resume > 0 { // a full download from zero overwrites them
			moved.Reused += dres.Copied
		}
		if err == nil && !done {
			o.Resume = resume
			var full int64
			full, err = install.Write(ctx, a.Source, art, t, o)
			n += full
			moved.Downloaded += full
		}
		if err != nil {
			if errors.Is(err, install.ErrDigest) {
				dl.Current, dl.Offset = "", 0 // bad bytes: never resume onto them
			}
			st.Download = dl
			return a.refuse(st, "download", err)
		}
		dl.Done = append(dl.Done, art.SHA256)
		dl.Current, dl.Offset = "", 0
		log.Info("artifact written and verified", "artifact", art.Name, "bytes", n)
	}
	rel := state.Release{Image: doc.Image, Version: doc.Version, Serial: doc.Serial, Channel: doc.Channel}
	st.Trial = &state.Trial{Slot: string(target), Release: rel, Since: a.now()}
	moved.Seconds = a.now().Sub(started).Round(100 * time.Millisecond).Seconds()
	if a.PeakRSS != nil {
		moved.PeakRSS = a.PeakRSS()
	}
	log.Info("installed", "version", doc.Version, "downloaded", moved.Downloaded, "reused", moved.Reused, "seconds", moved.Seconds, "peak_rss", moved.PeakRSS)
	st.LastInstall = moved
	st.LastError = ""
	if err := a.Store.Save(st); err != nil {
		return err
	}
	if err := a.Boot.TryOnce(target); err != nil {
		// Not armed: nothing was tried, nothing failed; the next poll
		// verifies the slot again and arms it.
		st.Trial = nil
		return a.refuse(st, "switch", fmt.Errorf("arm the trial of slot %s: %w", target, err))
	}
	st.Trial.Armed = true
	if err := a.Store.Save(st); err != nil {
		return err
	}
	log.Info("rebooting into the trial", "slot", target)
	if a.RebootTrial != nil {
		return a.RebootTrial()
	}
	return a.Reboot()
}

// slotArtifacts picks what goes into slot s: "root", and "boot" or the
// slot's own boot artifact (tryboot: boot.a, boot.b). Exactly one of each.
func slotArtifacts(doc *channel.Document, s bootchain.Slot) ([]channel.Artifact, error) {
	var boot, root []channel.Artifact
	for _, art := range doc.Artifacts {
		switch art.Name {
		case "root":
			root = append(root, art)
		case "boot", channel.BootArtifact(string(s)):
			boot = append(boot, art)
		case channel.BootArtifact(string(s.Other())):
		default:
			return nil, fmt.Errorf("unknown artifact %q", art.Name)
		}
	}
	if len(boot) != 1 || len(root) != 1 {
		return nil, fmt.Errorf("%s %s has %d boot artifacts for slot %s and %d root artifacts, want one of each", doc.Image, doc.Version, len(boot), s, len(root))
	}
	return append(boot, root...), nil
}

// refuse records why an update was refused and returns the error.
func (a *Agent) refuse(st state.State, stage string, err error) error {
	st.LastError = fmt.Sprintf("%s: %v", stage, err)
	st.LastCheck = a.now()
	if serr := a.Store.Save(st); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// AfterBoot settles a pending trial, or confirms the running slot.
func (a *Agent) AfterBoot(ctx context.Context) error {
	st, err := a.Load()
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
	ch := tr.Release.Channel
	if ch == "" {
		ch = a.Channel
	}
	st.Serials[ch] = max(st.Serials[ch], tr.Release.Serial)
	st.Committed = tr.Slot
	st.Degraded = ""
	st.Trial = nil
	st.Download = nil
	st.LastError = ""
	a.log().Info("committed", "version", tr.Release.Version, "slot", tr.Slot)
	return a.Store.Save(st)
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
	flashed := state.Release{Image: a.Image, Version: "as flashed"}
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
	st.Failed[tr.Release.Version] = state.Failure{Version: tr.Release.Version, Stage: stage, Check: check, Reason: cause.Error(), At: a.now()}
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
	st, err := a.Load()
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
