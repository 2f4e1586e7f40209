package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/device"
	"github.com/pibake/pibake/updater/service"
)

// call is one command line as a verb sees it.
type call struct {
	ctx            context.Context
	args           []string // after the verb
	stdout, stderr io.Writer
	log            *slog.Logger
}

// verb is one of the agent's commands: its usage, for
// 'pibake-updater VERB --help', and what it runs.
type verb struct {
	synopsis, about string
	run             func(call) error
}

// verbs are the agent's commands. provision is not one of them: it has
// flags of its own and its own --help.
var verbs = map[string]verb{
	"run": {"run", "The service: settle the boot (commit or roll back a trial), then poll the channel and install what it offers.",
		withAgent(serveCmd)},
	"status": {"status [--json]", "What each slot holds, the committed slot, a pending trial, a fallback (degraded), failed releases and the last result. Reads only.",
		statusCmd},
	"check": {"check", "Fetch and verify the channel document; install nothing.",
		withAgent(checkCmd)},
	"install": {"install URL|FILE|DIR", "Install from another repository (URL), a bundle file (pibake bundle) or a folder (e.g. a USB stick), with the same checks as the service.",
		withAgent(installCmd)},
	"apply": {"apply", "Install the channel's release (a release that waits is verified again, not downloaded) and reboot into it now: the maintenance window and the applications' inhibits only ever delay the service's own updates.",
		withAgent(applyCmd)},
	"mark-good": {"mark-good", "Keep the running slot.",
		withAgent(markGoodCmd)},
	"rollback": {"rollback", "Switch back to the other slot and reboot, only if it holds a verified release.",
		withAgent(rollbackCmd)},
}

// withAgent builds the device's agent from its configuration before f.
func withAgent(f func(call, *agent.Agent, config.Config) error) func(call) error {
	return func(c call) error {
		a, cfg, err := service.Load(c.log)
		if err != nil {
			return err
		}
		return f(c, a, cfg)
	}
}

func serveCmd(c call, a *agent.Agent, cfg config.Config) error {
	return service.Serve(c.ctx, a, cfg, c.log)
}

// The writing verbs are refused while another writer holds the lock.
// check is one: loading the state may set an untrusted one aside and
// rebuild it.

func checkCmd(c call, a *agent.Agent, _ config.Config) error {
	return service.AsWriter(func() error { return service.Check(c.ctx, a, c.stdout) })
}

func installCmd(c call, a *agent.Agent, _ config.Config) error {
	if len(c.args) != 1 {
		return errors.New("install takes one URL, bundle file or repository folder")
	}
	return service.AsWriter(func() error { return service.InstallFrom(c.ctx, a, c.args[0], c.log) })
}

func applyCmd(c call, a *agent.Agent, _ config.Config) error {
	return service.AsWriter(func() error { return a.Immediate().Update(c.ctx) })
}

func markGoodCmd(_ call, a *agent.Agent, _ config.Config) error {
	return service.AsWriter(func() error { return service.MarkGood(a) })
}

func rollbackCmd(c call, a *agent.Agent, _ config.Config) error {
	return service.AsWriter(func() error { return a.Rollback(c.ctx) })
}

func statusCmd(c call) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(c.args); err != nil {
		return err
	}
	return service.DeviceStatus().Print(c.stdout, *asJSON)
}

// provisionCmd is pibake-provision.service's first-boot step.
func provisionCmd(c call) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	bootsel := fs.String("bootsel", "", "a folder holding the provisioning files (default: mount bootsel at "+device.BootselMount+")")
	root := fs.String("root", "/", "the system to provision")
	if err := fs.Parse(c.args); err != nil {
		return err
	}
	return service.Provision(c.ctx, *bootsel, *root, c.log)
}
