package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"aead.dev/minisign"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/fsnotify/fsnotify"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/device"
	"github.com/pibake/pibake/updater/health"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/lock"
	"github.com/pibake/pibake/updater/state"
)

const usage = `pibake-updater: the A/B update agent of a pibake device.

Usage:
  pibake-updater run            the service: settle the boot, then poll the channel
  pibake-updater status [--json]  what each slot holds, the committed slot, a pending
                                trial, a fallback (degraded), failed releases, the last result
  pibake-updater check          fetch and verify the channel document, install nothing
  pibake-updater install URL|FILE|DIR  install from another repository, a bundle file
                                (pibake bundle) or a folder (e.g. a USB stick), same checks
  pibake-updater mark-good      keep the running slot
  pibake-updater rollback       switch back to the other slot and reboot, only if it
                                holds a verified release
  pibake-updater provision [--bootsel DIR] [--root DIR]  first boot: apply ` + provision.FileName + `
                                (or Imager's cloud-init files) from bootsel once, then erase them
install, mark-good and rollback are refused while another writer (the service
installing or settling a boot) holds the updater's lock.

Configuration: ` + config.ImagePath + `, overridden by ` + config.OverridePath + `
State: ` + statePath + `
`

const statePath = "/data/pibake/updater.json"

// verbs are the agent's commands, for 'pibake-updater VERB --help'.
var verbs = map[string]struct{ synopsis, about string }{
	"run":       {"run", "The service: settle the boot (commit or roll back a trial), then poll the channel and install what it offers."},
	"status":    {"status [--json]", "What each slot holds, the committed slot, a pending trial, a fallback (degraded), failed releases and the last result. Reads only."},
	"check":     {"check", "Fetch and verify the channel document; install nothing."},
	"install":   {"install URL|FILE|DIR", "Install from another repository (URL), a bundle file (pibake bundle) or a folder (e.g. a USB stick), with the same checks as the service."},
	"mark-good": {"mark-good", "Keep the running slot."},
	"rollback":  {"rollback", "Switch back to the other slot and reboot, only if it holds a verified release."},
}

// asksHelp says whether a verb's arguments ask for its usage.
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cmd, rest := args[0], args[1:]
	if v, ok := verbs[cmd]; ok && asksHelp(rest) {
		// Before anything runs: "install --help" is no URL, "run --help"
		// does not start the service.
		fmt.Fprintf(stdout, "Usage: pibake-updater %s\n\n%s\n", v.synopsis, v.about)
		return nil
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "status":
		return status(rest, stdout)
	case "provision":
		return provisionCmd(ctx, rest, stderr, log)
	}
	a, cfg, err := newAgent(log)
	if err != nil {
		return err
	}
	// One writer at a time: the service waits for its turn, a command
	// that writes is refused while another writer is at work.
	writer := func() (*lock.Lock, error) { return lock.Take(lock.Path, false) }
	switch cmd {
	case "run":
		return serve(ctx, a, cfg, log)
	case "check":
		st, err := a.Load()
		if err != nil {
			return err
		}
		d, err := a.Fetch(ctx, st)
		if errors.Is(err, channel.ErrReplay) {
			fmt.Fprintln(stdout, "up to date")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "available: %s %s (serial %d, expires %s)\n", d.Image, d.Version, d.Serial, d.Expires.Format(time.RFC3339))
		return nil
	case "install", "mark-good", "rollback":
		if cmd == "install" && len(rest) != 1 {
			return errors.New("install takes one URL, bundle file or repository folder")
		}
		l, err := writer()
		if err != nil {
			return err
		}
		defer l.Unlock()
		switch cmd {
		case "install":
			return installFrom(ctx, a, rest[0], log)
		case "mark-good":
			return a.Boot.MarkGood(a.Booted)
		}
		return a.Rollback(ctx)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// installFrom installs from a URL, a repository folder or a bundle file
// made by pibake bundle. A bundle that does not carry the configured
// channel but exactly one other is read from that one: it is signed and
// checked all the same.
func installFrom(ctx context.Context, a *agent.Agent, from string, log *slog.Logger) error {
	if st, err := os.Stat(from); err == nil && st.Mode().IsRegular() {
		b, err := install.OpenBundle(from)
		if err != nil {
			return err
		}
		chans := b.Channels()
		if !slices.Contains(chans, a.Channel) {
			if len(chans) != 1 {
				return fmt.Errorf("%s: %w %q; it has %s", from, install.ErrNoChannel, a.Channel, strings.Join(chans, ", "))
			}
			log.Info("the bundle carries another channel; installing from it", "configured", a.Channel, "bundle", chans[0])
			a.Channel = chans[0]
		}
		return a.InstallFrom(ctx, b)
	}
	return a.InstallFrom(ctx, source(from))
}

func source(s string) install.Source {
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return install.HTTP{Base: s}
	}
	return install.Dir{Path: strings.TrimPrefix(s, "file://")}
}

func newAgent(log *slog.Logger) (*agent.Agent, config.Config, error) {
	cfg, err := config.Load(config.ImagePath, config.OverridePath)
	if err != nil {
		return nil, cfg, err
	}
	a, err := agentFor(cfg, log)
	return a, cfg, err
}

func agentFor(cfg config.Config, log *slog.Logger) (*agent.Agent, error) {
	dev, err := device.Detect()
	if err != nil {
		return nil, err
	}
	dir, err := dev.MountBootsel()
	if err != nil {
		return nil, err
	}
	var keys []minisign.PublicKey
	for _, k := range cfg.Keys {
		pk, err := channel.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("updater config: %w", err)
		}
		keys = append(keys, pk)
	}
	var revoked []uint64
	for _, r := range cfg.Revoked {
		id, _ := config.ParseKeyID(r) // Validate checked them
		revoked = append(revoked, id)
	}
	var checks []agent.Check
	for _, u := range cfg.Health.Units {
		checks = append(checks, health.Unit{Unit: u})
	}
	for _, h := range cfg.Health.HTTP {
		checks = append(checks, health.HTTP{URL: h.URL, Status: h.Status})
	}
	for _, c := range cfg.Health.Commands {
		checks = append(checks, health.Command{Argv: c})
	}
	machineID, _ := os.ReadFile("/etc/machine-id")
	a := agent.New(agent.Config{
		Channel: cfg.Channel, Image: cfg.Image, Version: cfg.Version, Built: time.Unix(cfg.Built, 0),
		Board: cfg.Board, Trusted: keys, Revoked: revoked, DeviceID: strings.TrimSpace(string(machineID)),
		Checks: checks, Deadline: cfg.Health.Deadline,
	}, agent.Ports{
		Boot: bootloader.UBoot{Dir: dir}, Store: state.File{Path: statePath}, Source: source(cfg.Server),
		Booted: dev.Booted, Slots: dev.Slots,
		// Delta updates read the running slot's chunks.
		Running: func(s bootchain.Slot) (agent.Readable, agent.Readable, error) {
			boot, root, err := dev.Open(s)
			return boot, root, err
		},
		Reboot: device.Reboot, Log: log, PeakRSS: peakRSS,
	})
	if chain, _ := bootchain.ParseChain(cfg.Bootloader); chain == bootchain.Tryboot { // Load validated it
		rel, err := device.KernelRelease()
		if err != nil {
			return nil, err
		}
		if err := bootloader.CheckTrybootKernel(rel); err != nil {
			return nil, err
		}
		a.Boot = bootloader.Tryboot{Dir: dir}
		a.RebootTrial = func() error { return device.RebootWith(bootloader.TrybootRebootArg) }
	}
	return a, nil
}

// serve settles the boot, tells systemd it is ready, then polls; it
// reloads the configuration when the override changes (a bad override is
// refused and the last good configuration kept). The systemd watchdog is
// fed only while the loop makes progress: it beats on every turn, on
// every write of a download, and counts as busy for the bounded steps
// (the health checks' deadline, the document fetch).
func serve(ctx context.Context, a *agent.Agent, cfg config.Config, log *slog.Logger) error {
	var wd watchdog
	wd.beat()
	_, _ = daemon.SdNotify(false, daemon.SdNotifyReady)
	if every, _ := daemon.SdWatchdogEnabled(false); every > 0 {
		go wd.feed(ctx, every, log)
	}
	a.Beat = wd.beat
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
	if err := step(cfg.Health.Deadline+time.Minute, func() error { return a.AfterBoot(ctx) }); err != nil {
		log.Error("after boot", "err", err)
	}
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
	poll := time.NewTimer(time.Minute)
	defer poll.Stop()
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
				func(c config.Config) (*agent.Agent, error) { return agentFor(c, log) }); err != nil {
				log.Error("configuration change refused; keeping the last good one", "err", err, "channel", a.Channel, "poll", cfg.Poll)
				continue
			}
			a.Beat = wd.beat
			log.Info("configuration reloaded", "channel", a.Channel, "server", a.Source, "poll", cfg.Poll)
		case <-poll.C:
			if d := clock.hold(time.Now(), log); d > 0 {
				poll.Reset(d)
				continue
			}
			err := step(agent.FetchTimeout+time.Minute, func() error { return a.Update(ctx) })
			switch {
			case errors.Is(err, agent.ErrNothingNew):
				log.Info("up to date")
			case err != nil:
				log.Error("update", "err", err)
			}
			poll.Reset(cfg.Poll)
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

// watchdog feeds systemd's watchdog from the loop's progress.
type watchdog struct{ last, until atomic.Int64 }

func (w *watchdog) beat() { w.last.Store(time.Now().UnixNano()) }

// busy marks a step that may take up to d without beating (0: done).
func (w *watchdog) busy(d time.Duration) {
	if d == 0 {
		w.until.Store(0)
		return
	}
	w.until.Store(time.Now().Add(d).UnixNano())
}

// alive: a beat within half the watchdog interval, or a bounded step
// still within its bound.
func (w *watchdog) alive(now time.Time, every time.Duration) bool {
	return now.UnixNano()-w.last.Load() < int64(every/2) || now.UnixNano() < w.until.Load()
}

func (w *watchdog) feed(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every / 4)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if w.alive(now, every) {
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
				warned = false
			} else if !warned {
				log.Error("the main loop has made no progress: no longer feeding the watchdog", "since", time.Unix(0, w.last.Load()))
				warned = true
			}
		}
	}
}

func status(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Read only: an unreadable file is reported, not set aside (the
	// service does that when it next starts).
	var st state.State
	if data, err := os.ReadFile(statePath); err == nil {
		if st, err = state.Parse(data); err != nil {
			return fmt.Errorf("updater state %s is unreadable (%v); the service sets it aside and starts afresh", statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("updater state: %w", err)
	}
	out := struct {
		Booted string      `json:"booted,omitempty"`
		Boot   string      `json:"boot_state,omitempty"`
		State  state.State `json:"state"`
	}{State: st}
	if dev, err := device.Detect(); err == nil {
		out.Booted = string(dev.Booted)
		if dir, err := dev.MountBootsel(); err == nil {
			// The configured chain: updater.yaml's bootloader, or the default.
			cfg, err := config.Load(config.ImagePath, config.OverridePath)
			if err != nil {
				out.Boot = fmt.Sprintf("unknown (%v)", err)
			} else if chain, err := bootchain.ParseChain(cfg.Bootloader); err == nil {
				out.Boot = bootloader.Describe(chain, dir)
			}
		}
	}
	if !*asJSON {
		// Reasons and versions come from servers and documents: no
		// terminal control sequence of theirs reaches the terminal.
		stdout = safeText{stdout}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "booted slot: %s\nboot state: %s\n", out.Booted, out.Boot)
	if st.Committed != "" {
		fmt.Fprintf(stdout, "committed slot: %s\n", st.Committed)
	}
	if st.Degraded != "" {
		fmt.Fprintf(stdout, "degraded: %s\n", st.Degraded)
	}
	for _, ch := range slices.Sorted(maps.Keys(st.Serials)) {
		fmt.Fprintf(stdout, "channel %s: serial %d committed\n", ch, st.Serials[ch])
	}
	for _, s := range bootchain.Slots() {
		if r, ok := st.Slots[s.String()]; ok {
			fmt.Fprintf(stdout, "slot %s: %s %s (serial %d)\n", s, r.Image, r.Version, r.Serial)
		}
	}
	if st.Trial != nil {
		fmt.Fprintf(stdout, "trial pending: %s in slot %s since %s\n", st.Trial.Release.Version, st.Trial.Slot, st.Trial.Since.Format(time.RFC3339))
	}
	for _, v := range slices.Sorted(maps.Keys(st.Failed)) {
		f := st.Failed[v]
		fmt.Fprintf(stdout, "failed: %s at %s", v, f.Stage)
		if f.Check != "" {
			fmt.Fprintf(stdout, " (%s)", f.Check)
		}
		fmt.Fprintf(stdout, ": %s\n", f.Reason)
	}
	if m := st.LastInstall; m != nil {
		fmt.Fprintf(stdout, "last install: %s: downloaded %d bytes, reused %d from the running slot, of %d", m.Version, m.Downloaded, m.Reused, m.Full)
		if m.Seconds > 0 {
			fmt.Fprintf(stdout, ", in %.1f s", m.Seconds)
		}
		if m.PeakRSS > 0 {
			fmt.Fprintf(stdout, ", agent peak RSS %.1f MiB", float64(m.PeakRSS)/(1<<20))
		}
		fmt.Fprintln(stdout)
	}
	if st.LastError != "" {
		fmt.Fprintf(stdout, "last error: %s\n", st.LastError)
	}
	return nil
}

// safeText replaces control characters (C0 but newline and tab, DEL, C1)
// with '?': text a hostile server put into an error cannot move the
// cursor, clear the screen or retitle the terminal of whoever reads
// status.
type safeText struct{ w io.Writer }

func (s safeText) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, r := range string(p) {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	if _, err := io.WriteString(s.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// peakRSS is the process's peak resident set in bytes (Linux reports
// ru_maxrss in KiB).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}
