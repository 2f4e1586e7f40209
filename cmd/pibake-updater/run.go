package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/service"
)

const usage = `pibake-updater: the A/B update agent of a pibake device.

Usage:
  pibake-updater run            the service: settle the boot, then poll the channel
  pibake-updater status [--json]  what each slot holds, the committed slot, a pending
                                trial, a fallback (degraded), failed releases, the last result
  pibake-updater check          fetch and verify the channel document, install nothing
  pibake-updater install URL|FILE|DIR  install from another repository, a bundle file
                                (pibake bundle) or a folder (e.g. a USB stick), same checks
  pibake-updater apply          install the channel's release and reboot into it now,
                                ignoring the maintenance window and inhibits
  pibake-updater mark-good      keep the running slot
  pibake-updater rollback       switch back to the other slot and reboot, only if it
                                holds a verified release
  pibake-updater provision [--bootsel DIR] [--root DIR]  first boot: apply ` + provision.FileName + `
                                (or Imager's cloud-init files) from bootsel once, then erase them
install, apply, mark-good and rollback are refused while another writer (the service
installing or settling a boot) holds the updater's lock.

Configuration: ` + config.ImagePath + `, overridden by ` + config.OverridePath + `
State: ` + service.StatePath + `
`

// run dispatches one command line: a verb's --help before anything else,
// then the verbs that need no agent, then the agent's verbs.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	c := call{ctx: ctx, args: args[1:], stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, nil))}
	name := args[0]
	v, ok := verbs[name]
	if ok && asksHelp(c.args) {
		// Before anything runs: "install --help" is no URL, "run --help"
		// does not start the service.
		fmt.Fprintf(stdout, "Usage: pibake-updater %s\n\n%s\n", v.synopsis, v.about)
		return nil
	}
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "provision":
		return provisionCmd(c)
	}
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", name)
	}
	return v.run(c)
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
