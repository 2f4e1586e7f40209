// Package agent is the updater's state machine, free of any device detail:
// the boot loader, the state store, the repository, the slot partitions,
// the health checks and the reboot are all injected, so the whole machine
// runs against fakes in tests (including a power cut after every write).
//
//	Update:    fetch and verify the channel document (nothing else is read
//	           before it verifies) → write every artifact into the inactive
//	           slot, hashing → record the trial → boot loader: try that slot
//	           once → reboot.
//	AfterBoot: booted the trial slot → health checks within a deadline →
//	           all pass: mark it good (commit); any fails: mark it bad,
//	           remember the version as failed, reboot into the old slot.
//	           Booted the other slot while a trial was pending → the new
//	           slot never came up: remember the version as failed.
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
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// Check is one health check.
type Check interface {
	Name() string
	Run(ctx context.Context) error
}

// Slots opens the boot and root partitions of a slot for writing.
type Slots func(s bootloader.Slot) (boot, root install.Target, err error)

// Agent ties the parts together.
type Agent struct {
	Boot     bootloader.Bootloader
	Store    state.Store
	Source   install.Source
	Channel  string
	Trusted  []minisign.PublicKey
	Board    string
	Booted   bootloader.Slot
	Slots    Slots
	Checks   []Check
	Deadline time.Duration // for all health checks together
	Reboot   func() error
	// RebootTrial, if set, replaces Reboot for the reboot into a trial
	// (the tryboot chain needs the firmware's one-shot flag on it).
	RebootTrial func() error
	Now         func() time.Time
	Log         *slog.Logger
	Install     install.Options
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
// the serial, is uniform in [0, 1) and stable for that release, so raising
// the fraction only adds devices.
func InRollout(deviceID string, serial uint64, rollout float64) bool {
	if rollout >= 1 {
		return true
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", deviceID, serial)))
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

func readAll(ctx context.Context, src install.Source, path string) ([]byte, error) {
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

// Fetch reads and verifies the channel document against the saved serial.
func (a *Agent) Fetch(ctx context.Context, st state.State) (*channel.Document, error) {
	base := "channels/" + a.Channel + ".json"
	doc, err := readAll(ctx, a.Source, base)
	if err != nil {
		return nil, fmt.Errorf("channel %s from %s: %w", a.Channel, a.Source, err)
	}
	sig, err := readAll(ctx, a.Source, base+".minisig")
	if err != nil {
		return nil, fmt.Errorf("channel %s signature from %s: %w", a.Channel, a.Source, err)
	}
	return channel.Verify(doc, sig, channel.Check{Trusted: a.Trusted, Board: a.Board, Now: a.now(), LastSerial: st.LastSerial})
}

// Update installs the channel's release into the inactive slot and reboots
// into it for a trial. It returns ErrNothingNew when the channel offers
// nothing newer; every refusal is also recorded in the state.
func (a *Agent) Update(ctx context.Context) error {
	st, err := a.Store.Load()
	if err != nil {
		return err
	}
	if st.Trial != nil {
		return fmt.Errorf("a trial of %s in slot %s is pending: reboot first", st.Trial.Release.Version, st.Trial.Slot)
	}
	doc, err := a.Fetch(ctx, st)
	if errors.Is(err, channel.ErrReplay) {
		return ErrNothingNew
	}
	if err != nil {
		return a.refuse(st, "verify", err)
	}
	return a.install(ctx, st, doc)
}

// InstallFrom installs from another source (a file or USB stick) with the
// same verification.
func (a *Agent) InstallFrom(ctx context.Context, src install.Source) error {
	b := *a
	b.Source = src
	return b.Update(ctx)
}

func (a *Agent) install(ctx context.Context, st state.State, doc *channel.Document) error {
	if !InRollout(a.DeviceID, doc.Serial, doc.Rollout) {
		st.LastError = fmt.Sprintf("%s %s: %v (rollout %.0f%%)", doc.Image, doc.Version, ErrNotInRollout, doc.Rollout*100)
		_ = a.Store.Save(st)
		return ErrNotInRollout
	}
	if f, ok := st.Failed[doc.Version]; ok {
		st.LastError = fmt.Sprintf("%s %s: %v (%s: %s)", doc.Image, doc.Version, ErrFailedBefore, f.Stage, f.Reason)
		_ = a.Store.Save(st)
		return fmt.Errorf("%s: %w", doc.Version, ErrFailedBefore)
	}
	target := a.Booted.Other()
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
	log := a.log()
	log.Info("installing", "image", doc.Image, "version", doc.Version, "serial", doc.Serial, "slot", target)
	dl := st.Download
	if dl == nil || dl.Serial != doc.Serial || dl.Slot != string(target) {
		dl = &state.Download{Serial: doc.Serial, Slot: string(target)}
	}
	for _, art := range doc.Artifacts {
		var t install.Target
		switch art.Name {
		case "boot":
			t = bootT
		case "root":
			t = rootT
		default:
			return a.refuse(st, "verify", fmt.Errorf("unknown artifact %q", art.Name))
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
		n, err := install.Write(ctx, a.Source, art, t, o)
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
	st.Download = nil
	rel := state.Release{Image: doc.Image, Version: doc.Version, Serial: doc.Serial}
	st.Trial = &state.Trial{Slot: string(target), Release: rel, Since: a.now()}
	st.LastError = ""
	if err := a.Store.Save(st); err != nil {
		return err
	}
	if err := a.Boot.TryOnce(target); err != nil {
		return err
	}
	log.Info("rebooting into the trial", "slot", target)
	if a.RebootTrial != nil {
		return a.RebootTrial()
	}
	return a.Reboot()
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
	st, err := a.Store.Load()
	if err != nil {
		return err
	}
	if st.Trial == nil {
		return a.Boot.MarkGood(a.Booted)
	}
	tr := *st.Trial
	if bootloader.Slot(tr.Slot) != a.Booted {
		// The trial slot never reached this point: the boot loader fell back.
		return a.fail(st, tr, "boot", "", fmt.Errorf("slot %s did not come up; the boot loader started slot %s again", tr.Slot, a.Booted), false)
	}
	if name, err := a.health(ctx); err != nil {
		return a.fail(st, tr, "health", name, err, true)
	}
	if err := a.Boot.MarkGood(a.Booted); err != nil {
		return err
	}
	if st.Slots == nil {
		st.Slots = map[string]state.Release{}
	}
	st.Slots[tr.Slot] = tr.Release
	st.LastSerial = max(st.LastSerial, tr.Release.Serial)
	st.Trial = nil
	st.LastError = ""
	a.log().Info("committed", "version", tr.Release.Version, "slot", tr.Slot)
	return a.Store.Save(st)
}

func (a *Agent) fail(st state.State, tr state.Trial, stage, check string, cause error, reboot bool) error {
	if st.Failed == nil {
		st.Failed = map[string]state.Failure{}
	}
	st.Failed[tr.Release.Version] = state.Failure{Version: tr.Release.Version, Stage: stage, Check: check, Reason: cause.Error(), At: a.now()}
	st.LastSerial = max(st.LastSerial, tr.Release.Serial) // never offered again
	st.Trial = nil
	st.LastError = fmt.Sprintf("%s %s rolled back: %s", tr.Release.Image, tr.Release.Version, cause)
	if err := a.Boot.MarkBad(bootloader.Slot(tr.Slot)); err != nil {
		return err
	}
	if err := a.Store.Save(st); err != nil {
		return err
	}
	a.log().Warn("trial failed", "version", tr.Release.Version, "stage", stage, "check", check, "err", cause)
	if reboot {
		return a.Reboot()
	}
	return nil
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

// Rollback abandons the running slot for the other one and reboots.
func (a *Agent) Rollback(ctx context.Context) error {
	if err := a.Boot.MarkGood(a.Booted.Other()); err != nil {
		return err
	}
	return a.Reboot()
}
