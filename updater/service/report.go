package service

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/config"
	wire "github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/reporter"
	"github.com/pibake/pibake/updater/state"
)

// fleetReport is the service's side of reporting: the publisher (nil
// when the image configures no broker or the device has no credentials)
// and what its snapshots read.
type fleetReport struct {
	pub       *reporter.Publisher
	statePath string

	mu  sync.Mutex
	dev reporter.Device
}

// startReport starts the publisher when the image's configuration names a
// broker and provisioning gave the device its credentials; otherwise it
// says why once and the service runs without reporting. It never fails
// the service.
func startReport(ctx context.Context, a *agent.Agent, cfg config.Config, credPath, statePath string, log *slog.Logger) *fleetReport {
	r := &fleetReport{statePath: statePath}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Report == nil {
		return r
	}
	cred, err := config.LoadCredentials(credPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			log.Info("report: the image names a broker but this device has no credentials (provisioning's fleet: entry): not reporting", "path", credPath)
		} else {
			log.Warn("report: not reporting", "err", err)
		}
		return r
	}
	r.set(a, cfg, cred.User)
	r.pub, err = reporter.Start(ctx, reporter.Options{Report: *cfg.Report, Credentials: cred, Snapshot: r.snapshot, Log: log})
	if err != nil {
		log.Warn("report: not reporting", "err", err)
	}
	return r
}

// set records what the snapshots say of the device (after a reload too).
func (r *fleetReport) set(a *agent.Agent, cfg config.Config, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" {
		name = r.dev.Name
	}
	r.dev = reporter.Device{Name: name, Config: cfg, Booted: string(a.Booted)}
}

// snapshot reads the agent's state file as it is now; the publisher's
// goroutine calls it, never the update path. An unreadable file reports
// the device without its state (the agent sets such a file aside).
func (r *fleetReport) snapshot() wire.State {
	r.mu.Lock()
	dev := r.dev
	r.mu.Unlock()
	var st state.State
	if data, err := os.ReadFile(r.statePath); err == nil {
		if parsed, err := state.Parse(data); err == nil {
			st = parsed
		}
	}
	return reporter.Snapshot(dev, st, time.Now())
}

// changed tells the publisher the state may have changed; it never waits.
func (r *fleetReport) changed() { r.pub.Notify() }

// watch has every save of a's state file tell the publisher, so a trial
// armed just before its reboot is reported too (as far as the publisher
// gets before the service stops). The store keeps its other methods
// (Seal): only state.File is wrapped.
func (r *fleetReport) watch(a *agent.Agent) {
	if f, ok := a.Store.(state.File); ok && r.pub != nil {
		a.Store = notifyingFile{f, r.changed}
	}
}

// notifyingFile is a state.File whose successful saves call saved.
type notifyingFile struct {
	state.File
	saved func()
}

func (n notifyingFile) Save(st state.State) error {
	err := n.File.Save(st)
	if err == nil {
		n.saved()
	}
	return err
}
