package agent

// Deciding and installing an update: the channel document is fetched and
// verified (Fetch), the release is adopted if the device already runs it
// (adopt), else admitted (rollout, failed before) and written into the
// other slot (install, artifact by artifact through an artifactWriter),
// which is then armed for one trial boot (arm).

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
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
	return Place(deviceID, release) < rollout
}

// Place is a number in [0, 1) that is the device's own for key, the same
// at every call: its place in a release's rollout (key: the release) and
// in the service's poll schedule. One hash for both, so that a device's
// places spread evenly over the fleet.
func Place(deviceID, key string) float64 {
	sum := sha256.Sum256([]byte(deviceID + "/" + key))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / float64(1<<53)
}

// Fetch reads and verifies the channel document against this channel's
// last committed serial; a pair that does not match is read once more
// (rereadTorn).
func (a *Agent) Fetch(ctx context.Context, st state.State) (*channel.Document, error) {
	return rereadTorn(ctx, a.log().With("channel", a.Channel), "channel document", func() (*channel.Document, error) {
		return a.fetchOnce(ctx, st)
	})
}

// rereadTorn runs read, which reads and verifies a signed document (its
// what), and runs it once more after tornPause when it fails with
// channel.ErrSignature: the repository may be in the middle of a
// publish, which replaces a document and its signature one after the
// other, and a read between them reads one of each. A forgery fails the
// second reading too.
func rereadTorn[T any](ctx context.Context, log *slog.Logger, what string, read func() (T, error)) (T, error) {
	v, err := read()
	if !errors.Is(err, channel.ErrSignature) {
		return v, err
	}
	log.Info(what+" and signature do not match: reading them again (a publish may be in progress)", "err", err)
	if err := sleepCtx(ctx, tornPause); err != nil {
		var none T
		return none, err
	}
	return read()
}

// tornPause is how long rereadTorn waits before it reads a mismatched pair again.
var tornPause = time.Second

// sleepCtx waits d, or until ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (a *Agent) fetchOnce(ctx context.Context, st state.State) (*channel.Document, error) {
	base := channel.DocumentPath(a.Channel)
	doc, err := readAll(ctx, a.Source, base, a.fileOptions())
	if err != nil {
		return nil, fmt.Errorf("channel %s from %s: %w", a.Channel, a.Source, err)
	}
	sig, err := readAll(ctx, a.Source, channel.SignaturePath(base), a.fileOptions())
	if err != nil {
		return nil, fmt.Errorf("channel %s signature from %s: %w", a.Channel, a.Source, err)
	}
	d, err := a.verify(doc, sig, st)
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

// adopt is for a device that already runs the release its channel
// offers: one flashed with the image that was then published, or one
// that committed the release, which is re-published with a new serial
// (its rollout raised). It records that release and the serial for the
// booted slot instead of installing it into the other slot and rebooting
// into a trial. Only when the booted partitions hold the channel's
// artifacts byte for byte (one read of each, hashed); anything else
// (the same version rebuilt, a slot changed under it) installs as usual.
func (a *Agent) adopt(ctx context.Context, st state.State, doc *channel.Document) bool {
	if !a.runs(st, doc) {
		return false
	}
	log := a.log()
	arts, err := slotArtifacts(doc, a.Board, a.Booted)
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
		// The read-back every install ends with, on the running slot.
		if err := install.Verify(ctx, art, beatReader{partitionOf(art, boot, root), a.Beat}); err != nil {
			log.Info("the channel offers the version this device runs, but other bytes: installing it", "version", doc.Version, "artifact", art.Name, "err", err)
			return false
		}
	}
	if err := a.keepSigned(a.Channel, a.signed); err != nil {
		log.Warn("cannot keep the channel's document on bootsel", "err", err)
	}
	st.Slots[string(a.Booted)] = state.Release{Image: doc.Image, Version: doc.Version, Serial: doc.Serial, Channel: a.Channel}
	if st.Serials == nil {
		st.Serials = map[string]uint64{}
	}
	st.Serials[a.Channel] = doc.Serial
	st.LastCheck, st.LastError = a.now(), ""
	st.Waiting = nil // whatever waited is no longer offered
	if err := a.Store.Save(st); err != nil {
		log.Warn("cannot record the channel's release as the running one", "err", err)
		return false
	}
	log.Info("the channel's release is the one this device runs: recorded, nothing to install", "version", doc.Version, "serial", doc.Serial, "slot", a.Booted)
	return true
}

// runs says whether the booted slot's record names the release doc
// offers: the version it was flashed with (a slot as flashed), or the
// image and version committed there. A degraded device, one without a
// way to read its slot, or one running a slot it did not commit installs.
func (a *Agent) runs(st state.State, doc *channel.Document) bool {
	booted := string(a.Booted)
	cur, ok := st.Slots[booted]
	if !ok || a.Running == nil || degraded(st) {
		return false
	}
	if cur.Serial == 0 {
		return a.Version != "" && doc.Version == a.Version && doc.Image == a.Image
	}
	return st.Committed == booted && cur.Image == doc.Image && cur.Version == doc.Version
}

// InstallFrom installs from another source (a file or USB stick) with the
// same verification. The operator asked for it: it is applied at once,
// whatever the maintenance window and inhibits (Immediate).
func (a *Agent) InstallFrom(ctx context.Context, src install.Source) error {
	b := *a.Immediate()
	b.Source = src
	return b.Update(ctx)
}

// ErrHalted is the refusal of a release its channel halted (pibake
// rollout halt) on a device that has not committed it.
var ErrHalted = errors.New("the channel halted this release: not starting it")

// admit refuses, and records why, a release this device does not take:
// one its channel halted (unless the device committed it: it keeps it),
// one its rollout has not reached yet (the waves are judged by the clock
// expiry is judged by), or one that failed here before. A device with a
// download of the release half done stops there too: the written bytes
// stay in the other slot, out of the boot rotation, until the release is
// resumed.
func (a *Agent) admit(st state.State, doc *channel.Document) error {
	refuse := func(why string, err error) error {
		st.LastError = fmt.Sprintf("%s %s: %v (%s)", doc.Image, doc.Version, err, why)
		st.LastCheck = a.now()
		_ = a.Store.Save(st)
		return err
	}
	if doc.Halted && !committed(st, doc) {
		return refuse(fmt.Sprintf("serial %d", doc.Serial), ErrHalted)
	}
	at := a.expiryClock()
	if frac := doc.RolloutAt(at); !InRollout(a.DeviceID, doc.Image+"/"+doc.Version, frac) {
		return refuse(fmt.Sprintf("rollout %.0f%% at %s", frac*100, at.UTC().Format(time.RFC3339)), ErrNotInRollout)
	}
	if f, ok := st.Failed[doc.Version]; ok {
		return fmt.Errorf("%s: %w", doc.Version, refuse(f.Stage+": "+f.Reason, ErrFailedBefore))
	}
	return nil
}

// committed says whether the device committed doc's release.
func committed(st state.State, doc *channel.Document) bool {
	cur, ok := st.Slots[st.Committed]
	return ok && cur.Serial != 0 && cur.Image == doc.Image && cur.Version == doc.Version
}

// install writes the release of doc into the other slot, then arms it for
// a trial and reboots.
func (a *Agent) install(ctx context.Context, st state.State, doc *channel.Document) error {
	if err := a.admit(st, doc); err != nil {
		return err
	}
	target := a.Booted.Other()
	arts, err := slotArtifacts(doc, a.Board, target)
	if err != nil {
		return a.refuse(st, "verify", err)
	}
	if err := a.stillWaiting(&st, doc, target); err != nil {
		return err // ErrWaiting: verified before, not due yet
	}
	dl := st.Download
	if dl == nil || dl.Serial != doc.Serial || dl.Slot != string(target) {
		// A new serial of the same slot keeps the list of what was
		// written: each is verified again before it counts (waiting
		// releases see their serial change as waves widen).
		var done []string
		if dl != nil && dl.Slot == string(target) {
			done = dl.Done
		}
		dl = &state.Download{Serial: doc.Serial, Slot: string(target), Done: done}
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
	defer closeAll(bootT, rootT)
	a.log().Info("installing", "image", doc.Image, "version", doc.Version, "serial", doc.Serial, "slot", target)
	started := a.now()
	w := a.newArtifactWriter(doc, arts)
	defer w.close()
	moved, err := a.writeArtifacts(ctx, st, w, bootT, rootT)
	if err != nil {
		return err
	}
	moved.Seconds = a.now().Sub(started).Round(100 * time.Millisecond).Seconds()
	if a.PeakRSS != nil {
		moved.PeakRSS = a.PeakRSS()
	}
	if moved, err = a.ready(&st, doc, target, moved); err != nil {
		return err // ErrWaiting: installed and verified, applied later
	}
	return a.arm(st, doc, target, moved)
}

// writeArtifacts writes every artifact of w's release into the slot's
// partitions and returns what that moved. st.Download says what an
// earlier run did: an artifact it wrote is verified again instead of
// written, one it was writing resumes at its last checkpoint; each
// checkpoint is saved. A failure is recorded as the refusal it returns.
func (a *Agent) writeArtifacts(ctx context.Context, st state.State, w *artifactWriter, bootT, rootT install.Target) (*state.Transfer, error) {
	dl, log := st.Download, a.log()
	moved := &state.Transfer{Version: w.doc.Version}
	for _, art := range w.arts {
		moved.Full += art.Size
	}
	w.triedPatch = func(art channel.Artifact) bool { return slices.Contains(dl.Patched, art.SHA256) }
	w.tryPatch = func(art channel.Artifact) error {
		dl.Patched = append(dl.Patched, art.SHA256)
		st.Download = dl
		return a.Store.Save(st)
	}
	for _, art := range w.arts {
		t := beatTarget{partitionOf(art, bootT, rootT), a.Beat}
		if slices.Contains(dl.Done, art.SHA256) {
			// Written before a restart: trusted only once it verifies again.
			if err := install.Verify(ctx, art, t); err == nil {
				log.Info("artifact already written and verified", "artifact", art.Name)
				continue
			}
			dl.Done = slices.DeleteFunc(dl.Done, func(s string) bool { return s == art.SHA256 })
		}
		o := a.installOptions(art)
		if dl.Current == art.SHA256 {
			o.Resume = dl.Offset
		}
		dl.Current, dl.Offset = art.SHA256, o.Resume
		o.Progress = func(written int64) error {
			dl.Offset = written
			st.Download = dl
			return a.Store.Save(st)
		}
		m, err := w.write(ctx, art, t, o)
		moved.Downloaded += m.fetched
		moved.Reused += m.reused
		if err != nil {
			if errors.Is(err, install.ErrDigest) {
				dl.Current, dl.Offset = "", 0 // bad bytes: never resume onto them
			}
			st.Download = dl
			return nil, a.refuse(st, "download", err)
		}
		dl.Done = append(dl.Done, art.SHA256)
		dl.Current, dl.Offset = "", 0
		log.Info("artifact written and verified", "artifact", art.Name, "bytes", m.fetched)
	}
	return moved, nil
}

// arm records the written release as the trial of slot target (not armed
// yet), has the boot loader try that slot once, records the trial armed
// and reboots into it.
func (a *Agent) arm(st state.State, doc *channel.Document, target bootchain.Slot, moved *state.Transfer) error {
	log := a.log()
	rel := state.Release{Image: doc.Image, Version: doc.Version, Serial: doc.Serial, Channel: doc.Channel}
	st.Trial = &state.Trial{Slot: string(target), Release: rel, Since: a.now(), Signed: a.signed}
	st.Waiting = nil
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

// slotArtifacts picks what goes into slot s of a device of board: of
// board's artifacts (a release may carry several boards'), "root", and
// "boot" or the slot's own boot artifact (tryboot: boot.a, boot.b).
// Exactly one of each.
func slotArtifacts(doc *channel.Document, board string, s bootchain.Slot) ([]channel.Artifact, error) {
	var boot, root []channel.Artifact
	for _, art := range doc.ArtifactsFor(board) {
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
		return nil, fmt.Errorf("%s %s has %d boot artifacts for slot %s of board %s and %d root artifacts, want one of each", doc.Image, doc.Version, len(boot), s, board, len(root))
	}
	return append(boot, root...), nil
}
