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

// provisionReport is what provision check found, for --json.
type provisionReport struct {
	OK     bool             `json:"ok"`
	Checks []provisionCheck `json:"checks"`
}

// provisionCheck is one check: a pibake-provision.yaml, or the
// cloud-init files given (read together, as the device reads them).
type provisionCheck struct {
	Files      []string `json:"files"`
	OK         bool     `json:"ok"`
	Error      string   `json:"error,omitempty"`
	NotApplied []string `json:"not_applied,omitempty"`
	Note       string   `json:"note,omitempty"`
}

// cmdProvision: pibake provision check FILE... checks first-boot
// provisioning files on a laptop, before they go onto a card.
func cmdProvision(_ context.Context, args []string, stdout, stderr io.Writer) error {
	const help = "Usage: pibake provision check [--json] FILE...\n\nChecks " + provision.FileName + ", or Raspberry Pi Imager's user-data, network-config and meta-data\n(by file name), as the device will read them at first boot: the files given are taken as one card's,\nand the device refuses " + provision.FileName + " and cloud-init files together. See docs/provisioning.md.\n\nExample: pibake provision check pibake-provision.yaml\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, help)
		return nil
	}
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprint(stderr, help)
		return fmt.Errorf("provision: want the check verb: %w", errUsage)
	}
	fs := newFlags("provision check", "provision check [--json] FILE...", stdout, stderr)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("provision check: want at least one file: %w", errUsage)
	}
	rep, errs := checkProvision(pos)
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		for _, c := range rep.Checks {
			if !c.OK {
				continue
			}
			fmt.Fprintf(stdout, "%s: ok%s\n", strings.Join(c.Files, ", "), c.Note)
			for _, n := range c.NotApplied {
				fmt.Fprintf(stdout, "  not applied: %s\n", n)
			}
		}
	}
	return errors.Join(errs...)
}

// checkProvision checks the files as one card's bootsel: each of
// pibake's files alone, the cloud-init files (by name) together, and
// both kinds together refused as the device refuses them
// (provision.ParseInputs, which the device's first boot runs).
func checkProvision(paths []string) (*provisionReport, []error) {
	rep := &provisionReport{OK: true}
	var errs []error
	fail := func(files []string, err error) {
		rep.OK = false
		rep.Checks = append(rep.Checks, provisionCheck{Files: files, Error: err.Error()})
		errs = append(errs, err)
	}
	cloud := map[string][]byte{}
	var cloudPaths, own []string
	data := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			fail([]string{p}, fmt.Errorf("provision check: %w", err))
			continue
		}
		switch filepath.Base(p) {
		case provision.UserData, provision.NetworkConfig, provision.MetaData:
			cloud[filepath.Base(p)] = b
			cloudPaths = append(cloudPaths, p)
		default:
			data[p] = b
			own = append(own, p)
		}
	}
	if len(own) > 0 && len(cloudPaths) > 0 {
		// The device's own rule, on what would be its bootsel.
		both := map[string][]byte{provision.FileName: data[own[0]]}
		for k, v := range cloud {
			both[k] = v
		}
		_, err := provision.ParseInputs(both, nil)
		fail(append(own, cloudPaths...), fmt.Errorf("provision check: %s given with %s: the device refuses them on one card: %w", strings.Join(own, ", "), strings.Join(cloudPaths, ", "), err))
		return rep, errs
	}
	for _, p := range own {
		s, err := provision.Parse(p, data[p])
		if err != nil {
			fail([]string{p}, err)
			continue
		}
		c := provisionCheck{Files: []string{p}, OK: true, NotApplied: s.NotApplied,
			Note: " (users, owners, the time zone and the update channel are checked against the image on first boot)"}
		if filepath.Base(p) != provision.FileName {
			c.Note += "; on the card it must be named " + provision.FileName + " (pibake flash --provision names it so)"
		}
		rep.Checks = append(rep.Checks, c)
	}
	if len(cloudPaths) == 0 {
		return rep, errs
	}
	s, err := provision.ParseInputs(cloud, nil)
	if err != nil {
		fail(cloudPaths, err)
		return rep, errs
	}
	rep.Checks = append(rep.Checks, provisionCheck{Files: cloudPaths, OK: true, NotApplied: s.NotApplied})
	return rep, errs
}
