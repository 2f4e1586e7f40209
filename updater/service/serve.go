package service

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/fsnotify/fsnotify"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/lock"
	"github.com/pibake/pibake/updater/state"
)

// Serve is the service: it settles the boot, tells systemd it is ready,
// then polls; it reloads the configuration when the override changes (a
// bad override is refused and the last good configuration kept). The
// systemd watchdog is fed only while the loop makes progress: it beats on
// every turn, on every read and write of a partition, while a download
// keeps the slowest link's pace (install.Pace; one that falls behind ends
// with install.ErrTooSlow and the loop polls again), and counts as busy
// for the bounded steps (the health checks' deadline, the grace of the
// first document). The download in progress is kept for status
// (DownloadPath). Polls follow NextPoll (jitter, Retry-After, the
// window's opening). It returns when ctx is done.
func Serve(ctx context.Context, a *agent.Agent, cfg config.Config, log *slog.Logger) error {
	var wd watchdog
	wd.beat()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	if every, _ := daemon.SdWatchdogEnabled(false); every > 0 {
		go wd.feed(ctx, every, log)
	}
	live := &liveDownload{path: DownloadPath, every: time.Second}
	a.Beat, a.Report = wd.beat, live.report
	step := func(bound time.Duration, f func() error) error {
		l, err := lock.Take(lock.Path, true)
		if err != nil {
			return err
		}
		defer l.Unlock()
		wd.busy(bound)
		defer wd.busy(0)
		return f()
	}
	fleet := startReport(ctx, a, cfg, config.CredentialsPath, StatePath, log)
	fleet.watch(a)
	if err := step(cfg.Health.Deadline+time.Minute, func() error { return a.AfterBoot(ctx) }); err != nil {
		log.Error("after boot", "err", err)
	}
	fleet.changed()
	_ = os.MkdirAll(filepath.Dir(config.OverridePath), 0o755)
	watch, err := fsnotify.NewWatcher()
	if err == nil {
		defer watch.Close()
		_ = watch.Add(filepath.Dir(config.OverridePath))
	}
	var events <-chan fsnotify.Event
	if watch != nil {
		events = watch.Events
	}
	poll := time.NewTimer(FirstPollAfter(cfg.Poll, a.DeviceID))
	defer poll.Stop()
	// An application's container can be given this folder to hold an
	// inhibit in (inhibit.go).
	_ = os.MkdirAll(InhibitDir, 0o755)
	turn := 0
	clock := newClockGate(time.Now(), cfg.TimeWait, kernelClockSynced)
	idle := time.NewTicker(10 * time.Second)
	defer idle.Stop()
	for {
		wd.beat()
		select {
		case <-ctx.Done():
			return nil
		case <-idle.C:
		case ev := <-events:
			if filepath.Clean(ev.Name) != config.OverridePath {
				continue
			}
			if err := reload(a, &cfg, func() (config.Config, error) { return config.Load(config.ImagePath, config.OverridePath) },
				func(c config.Config) (*agent.Agent, error) { return New(c, log) }); err != nil {
				log.Error("configuration change refused; keeping the last good one", "err", err, "channel", a.Channel, "poll", cfg.Poll)
				continue
			}
			a.Beat, a.Report = wd.beat, live.report
			fleet.set(a, cfg, "")
			fleet.watch(a)
			fleet.changed()
			log.Info("configuration reloaded", "channel", a.Channel, "server", a.Source, "poll", cfg.Poll)
		case <-poll.C:
			if d := clock.hold(time.Now(), log); d > 0 {
				poll.Reset(d)
				continue
			}
			var waiting *state.Waiting // what waits, for the window's opening
			err := step(install.Grace+time.Minute, func() error {
				err := a.Update(ctx)
				if errors.Is(err, agent.ErrWaiting) {
					if st, lerr := a.Store.Load(); lerr == nil {
						waiting = st.Waiting
					}
				}
				return err
			})
			live.clear()
			fleet.changed()
			switch {
			case errors.Is(err, agent.ErrNothingNew):
				log.Info("up to date")
			case errors.Is(err, agent.ErrWaiting): // the agent said why
			case err != nil:
				log.Error("update", "err", err)
			}
			turn++
			next := NextPoll(cfg.Poll, a.DeviceID, turn, err, waiting, time.Now())
			if _, busy := install.RetryAfter(err); busy {
				log.Info("the server asked to come back later", "next poll in", next.Round(time.Second))
			}
			poll.Reset(next)
		}
	}
}

// reload replaces the agent and its configuration with freshly loaded
// ones, or leaves both as they were if either cannot be made.
func reload(a *agent.Agent, cfg *config.Config, load func() (config.Config, error), build func(config.Config) (*agent.Agent, error)) error {
	next, err := load()
	if err != nil {
		return err
	}
	na, err := build(next)
	if err != nil {
		return err
	}
	*a, *cfg = *na, next
	return nil
}
