package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/provision"
)

// cmdProvision: pibake provision check FILE... checks first-boot
// provisioning files on a laptop, before they go onto a card.
func cmdProvision(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const help = "Usage: pibake provision check FILE...\n\nChecks " + provision.FileName + ", or Raspberry Pi Imager's user-data, network-config and meta-data\n(by file name), as the device will read them at first boot. See docs/provisioning.md.\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, help)
		return nil
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, help)
		return fmt.Errorf("provision: want the check verb: %w", errUsage)
	}
	fs := newFlags("provision check", "provision check FILE...", stdout, stderr)
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("provision check: want at least one file: %w", errUsage)
	}
	var ci provision.CloudInit
	var cloud []string
	var errs []error
	for _, p := range pos {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("provision check: %w", err))
			continue
		}
		switch filepath.Base(p) {
		case provision.UserData:
			ci.UserData = data
		case provision.NetworkConfig:
			ci.NetworkConfig = data
		case provision.MetaData:
			ci.MetaData = data
		default:
			if _, err := provision.Parse(p, data); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "%s: ok (users, owners, the time zone and the update channel are checked against the image on first boot)\n", p)
			continue
		}
		cloud = append(cloud, p)
	}
	if len(cloud) > 0 {
		s, err := provision.ParseCloudInit(ci)
		if err != nil {
			errs = append(errs, err)
		} else {
			fmt.Fprintf(stdout, "%s: ok\n", strings.Join(cloud, ", "))
			for _, n := range s.NotApplied {
				fmt.Fprintf(stdout, "  not applied: %s\n", n)
			}
		}
	}
	return errors.Join(errs...)
}
