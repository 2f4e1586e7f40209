package service

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/device"
	"github.com/pibake/pibake/updater/health"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// StatePath is the agent's state file on the device.
const StatePath = "/data/pibake/updater.json"

// Load reads the device's configuration (the image's updater.yaml and its
// override) and builds the agent from it.
func Load(log *slog.Logger) (*agent.Agent, config.Config, error) {
	cfg, err := config.Load(config.ImagePath, config.OverridePath)
	if err != nil {
		return nil, cfg, err
	}
	a, err := New(cfg, log)
	return a, cfg, err
}

// New builds the agent for cfg on the running device: the booted slot and
// the slot partitions, bootsel mounted for the boot chain's state and the
// agent's trust files (state.Keep), the trusted and revoked keys, the
// health checks. This is the one place that
// turns configuration and device into an agent.Agent.
func New(cfg config.Config, log *slog.Logger) (*agent.Agent, error) {
	dev, err := device.Detect()
	if err != nil {
		return nil, err
	}
	dir, err := dev.MountBootsel()
	if err != nil {
		return nil, err
	}
	// The agent's trust files live on bootsel, which only the agent mounts
	// (root only): the key that authenticates the state on /data, and the
	// signed document of each channel's last committed release.
	keep := state.Keep{Dir: filepath.Join(dir, state.KeepDir)}
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
		Boot: bootloader.UBoot{Dir: dir}, Store: state.File{Path: StatePath, KeyPath: keep.KeyPath()}, Keep: keep, Source: Source(cfg.Server),
		Booted: dev.Booted, Slots: dev.Slots,
		// Delta updates read the running slot's chunks.
		Running: func(s bootchain.Slot) (agent.Readable, agent.Readable, error) {
			boot, root, err := dev.Open(s)
			return boot, root, err
		},
		Reboot: device.Reboot, Log: log, PeakRSS: peakRSS,
	})
	if cfg.Window != nil {
		a.Window = *cfg.Window
	}
	a.MaxInhibit = cfg.Inhibit.Max()
	a.Inhibitors = Inhibitors(InhibitDir, SystemdInhibitDir)
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

// Source is the repository at s: an http(s) URL, or a folder (a plain
// path or a file:// URL). Over HTTP the channel's documents are asked
// for conditionally, against the copies kept since the source was made.
func Source(s string) install.Source {
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return install.HTTP{Base: s, Cache: &install.Cache{}}
	}
	return install.Dir{Path: strings.TrimPrefix(s, "file://")}
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
