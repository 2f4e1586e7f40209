// Package agent is the updater's state machine, free of any device detail:
// the boot loader, the state store, the repository, the slot partitions,
// the reboot and the clock are injected (Ports), apart from what the
// agent is told to do (Config), so the whole machine runs against fakes in
// tests (including a power cut at every write).
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
//	           armed → reboot. With a maintenance window or an inhibit
//	           held, the written and verified release waits instead of
//	           being armed (window.go); it is armed only after the
//	           channel's document and the slot verify again.
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
//
// The files follow the phases: update.go decides and installs (Fetch,
// Update, InstallFrom), artifact.go writes one artifact (a patch, else
// chunks, else the whole of it), afterboot.go settles a boot (AfterBoot,
// Rollback).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Config is the agent's policy: which releases it takes (channel, image,
// board, keys, rollout place), how it judges a trial (health checks and
// their deadline) and how it downloads. It comes from the image's
// updater.yaml and its override.
type Config struct {
	Channel string
	Image   string // the image this device runs; documents of others are refused
	// Version is the version of the image as flashed (the image's own
	// updater.yaml): a device flashed with the release its channel
	// offers records that release instead of installing it again.
	Version string
	// Built is the image's build time: a clock that reads earlier (a Pi
	// without RTC before time sync, at 1970) is not trusted for expiry.
	Built   time.Time
	Board   string
	Trusted []minisign.PublicKey
	Revoked []uint64 // key IDs refused even if trusted
	// DeviceID places this device in a release's rollout (the machine-id).
	DeviceID string
	Checks   []Check
	Deadline time.Duration // for all health checks together
	Download Download
	// DeltaPolicy merges range requests; zero is delta.DefaultPolicy.
	DeltaPolicy delta.Policy
	// Window, if set, is when the agent may arm an installed release and
	// reboot into it (window.go); it downloads and verifies at any time.
	Window Schedule
	// MaxInhibit bounds how long inhibits may hold back a release inside
	// its window; zero is DefaultMaxInhibit.
	MaxInhibit time.Duration
}

// Download tunes the transfer of every artifact; a zero field takes
// install.Write's default.
type Download struct {
	Attempts     int           // per artifact
	Backoff      time.Duration // first wait between attempts, doubled each time
	StallTimeout time.Duration // no byte for this long cuts the connection
	Checkpoint   int64         // bytes between two saved resume points
}

// Ports are the device and the world the agent drives: each one a fake in
// tests.
type Ports struct {
	Boot   bootloader.Bootloader
	Store  state.Store
	Source install.Source // the update repository
	// Booted is the slot the device started (from its command line).
	Booted bootchain.Slot
	Slots  Slots
	// Keep, if set, keeps the signed document of each committed release
	// where the data partition cannot reach (bootsel: trust.go); Running
	// then also identifies what a slot holds when the state is lost.
	Keep Keep
	// Running, if set, opens the booted slot's partitions for reading:
	// an artifact the channel's chunk document lists is then written from
	// a patch or from the chunks they hold plus range requests for the
	// rest (delta updates), falling back to the full download on any
	// failure.
	Running Running
	Reboot  func() error
	// RebootTrial, if set, replaces Reboot for the reboot into a trial
	// (the tryboot chain needs the firmware's one-shot flag on it).
	RebootTrial func() error
	Now         func() time.Time // nil: time.Now
	// PeakRSS, if set, reports the process's peak resident memory in
	// bytes, recorded with each install.
	PeakRSS func() int64
	Log     *slog.Logger // nil: discard
	// Beat, if set, is called on every read and write of a partition
	// and while a download keeps the slowest link's pace (install.Pace):
	// the service's watchdog is fed from it while the agent makes
	// progress, and not from a download that falls behind.
	Beat func()
	// Report, if set, is told how the current artifact's download goes
	// (bytes, rate, since when) at every step of it: the service shows
	// it in status.
	Report func(install.Reading)
	// Inhibitors, if set, says who holds an inhibit on the reboot now
	// (none: nil); an inhibit only delays it (window.go).
	Inhibitors func() []string
}

// Agent ties the parts together: what it is told (Config) and what it
// drives (Ports), both embedded so that a.Channel or a.Boot read as
// before.
type Agent struct {
	Config
	Ports
	// signed is the last channel document that verified, as signed: the
	// trial's (arm) or the adopted release's, kept when it commits.
	signed *state.Signed
}

// New returns the agent that follows cfg and drives p.
func New(cfg Config, p Ports) *Agent {
	return &Agent{Config: cfg, Ports: p}
}

// Errors of the agent itself.
var (
	ErrFailedBefore = errors.New("this version failed before and is not retried")
	ErrHealth       = errors.New("health check failed")
	ErrNothingNew   = errors.New("no new release")
	ErrNotInRollout = errors.New("this device is not in the release's rollout yet")
)

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

// installOptions are the options of art's download, before its resume
// point and progress are known: one pace (install.Pace) for every way it
// is tried, on the agent's clock, reported to the service.
func (a *Agent) installOptions(art channel.Artifact) install.Options {
	o := a.fileOptions()
	o.Pace = &install.Pace{Name: art.Name, Size: art.Size, Now: a.Now, Beat: a.Beat, Report: a.Report}
	return o
}

// fileOptions are the options of a read of a small file, the documents:
// each gets a pace of its own.
func (a *Agent) fileOptions() install.Options {
	d := a.Download
	return install.Options{Attempts: d.Attempts, Backoff: d.Backoff, StallTimeout: d.StallTimeout,
		Checkpoint: d.Checkpoint, Beat: a.Beat, Log: a.log(), Pace: &install.Pace{Now: a.Now, Beat: a.Beat}}
}

// Load reads the state. An unreadable state file has been set aside by
// the store, as has one that fails its authentication (or is gone once
// the device has a key): the agent then rebuilds the state from what it
// can verify (recoverState), never acting on it and never stopping on it.
// Each channel's serial is raised to the floor of the kept documents.
func (a *Agent) Load() (state.State, error) {
	return a.load(context.Background())
}

func (a *Agent) load(ctx context.Context) (state.State, error) {
	st, err := a.Store.Load()
	if errors.Is(err, state.ErrCorrupt) || errors.Is(err, state.ErrUntrusted) {
		a.log().Warn("the updater state is not trusted; rebuilding it from what this device can verify", "err", err)
		return a.recoverState(ctx, err)
	}
	if err != nil {
		return st, err
	}
	st.Upgrade(a.Channel)
	for ch, d := range a.kept() {
		if st.Serials == nil {
			st.Serials = map[string]uint64{}
		}
		st.Serials[ch] = max(st.Serials[ch], d.Serial)
	}
	return st, nil
}

// degraded: the device runs a fallback (Degraded) and reinstalls the
// channel's release, serial equal to the committed one included.
func degraded(st state.State) bool { return st.Degraded != "" }

// refuse records why an update was refused and returns the error.
func (a *Agent) refuse(st state.State, stage string, err error) error {
	st.LastError = fmt.Sprintf("%s: %v", stage, err)
	st.LastCheck = a.now()
	if serr := a.Store.Save(st); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}
