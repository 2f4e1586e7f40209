package imagedef

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pibake/pibake/internal/editdist"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/system"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/internal/yamlerr"
)

// CheckOptions is what Check knows besides the definition.
type CheckOptions struct {
	// Packages are the Debian packages the image installs, dependencies
	// included: the lock's, when it is fresh. Without them Check knows
	// only debian.packages and the packages the network section adds.
	Packages []string
}

// Check finds what Load does not and a build (or only a device) would:
// a board the boot chain cannot boot today, containers without their
// runtime's packages, a group no user can join, a unit the update
// agent's health check or a container waits for that nothing of the
// image provides. Load leaves these to Check because they depend on
// what pibake knows before bootstrap, which is less than the build
// knows (docs/image-definition.md#what-validate-knows); pibake validate
// runs it. Every problem is reported, each with its line.
func (d *Definition) Check(opts CheckOptions) yamlerr.Errors {
	pk := map[string]bool{}
	for _, p := range slices.Concat(d.Debian.Packages, d.Network.Packages(), opts.Packages) {
		pk[p] = true
	}
	var errs yamlerr.Errors
	bad := func(msg string, p ...string) {
		errs = append(errs, &yamlerr.Error{File: d.File, Line: lineOf(d.node, p), Field: strings.Join(p, "."), Msg: msg})
	}
	for i, b := range d.Boards {
		if fb, err := firmware.Lookup(b); err == nil && fb.Unsupported != "" {
			bad(fmt.Sprintf("board %q cannot be built today: %s (supported: %s; see pibake boards)", b, fb.Unsupported, strings.Join(firmware.Supported(), ", ")), "boards", strconv.Itoa(i))
		}
		if fb, err := firmware.Lookup(b); err == nil && fb.BackportsKernel && !d.backportsKernel() {
			bad(fmt.Sprintf("board %q needs a kernel %s's main archive does not have: use %s", b, d.Debian.Suite, fb.KernelFix), "boards", strconv.Itoa(i))
		}
	}
	if len(d.Containers) > 0 {
		for _, need := range runtimePackages[d.ContainerRuntime] {
			if !pk[need] {
				bad(fmt.Sprintf("the containers run with %s, but debian.packages does not install %s: add it and run 'pibake lock' (the build would stop after the bootstrap)", d.ContainerRuntime, need), "debian", "packages")
			}
		}
	}
	d.checkGroups(pk, bad)
	d.checkUnits(pk, bad)
	return errs
}

// backportsKernel reports whether debian.packages asks for a kernel from
// the suite's backports archive (linux-image-*/SUITE-backports).
func (d *Definition) backportsKernel() bool {
	for _, p := range d.Debian.Packages {
		if name, suite, ok := strings.Cut(p, "/"); ok && strings.HasPrefix(name, "linux-image-") && suite == d.Debian.Suite+"-backports" {
			return true
		}
	}
	return false
}

// runtimePackages are the packages each container runtime needs.
var runtimePackages = map[string][]string{"podman": {"podman"}, "docker": {"docker.io", "docker-cli"}}

// BaseGroups are the groups of every Debian system: base-passwd's
// static list (/usr/share/base-passwd/group.master in trixie).
var BaseGroups = []string{"root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man",
	"proxy", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "www-data",
	"backup", "operator", "list", "irc", "src", "shadow", "utmp", "video", "sasl", "plugdev", "staff", "games",
	"users", "nogroup"}

// packageGroups are groups that packages make when they are installed
// (systemd's sysusers.d files, maintainer scripts), for the packages
// pibake's images use. A group another package makes is known only to
// the build.
var packageGroups = map[string][]string{
	"systemd":        {"systemd-journal", "input", "kvm", "render", "sgx", "clock", "systemd-network", "systemd-timesync", "systemd-resolve"},
	"udev":           {"input", "kvm", "render", "sgx"},
	"openssh-server": {"_ssh"},
	"docker.io":      {"docker"},
	"dbus":           {"messagebus"},
	"polkitd":        {"polkitd"},
	"bluez":          {"bluetooth"},
	"i2c-tools":      {"i2c"},
}

// systemdPackages pull in systemd (and its sysusers groups and units).
var systemdPackages = []string{"systemd", "systemd-sysv", "udev"}

func (d *Definition) hasSystemd(pk map[string]bool) bool {
	return slices.ContainsFunc(systemdPackages, func(p string) bool { return pk[p] })
}

// checkGroups: each group a user joins must be in the base, made by a
// package Check knows, or be the own group of an earlier user (the build
// adds users in order).
func (d *Definition) checkGroups(pk map[string]bool, bad func(msg string, p ...string)) {
	known := map[string]bool{}
	for _, g := range BaseGroups {
		known[g] = true
	}
	if d.hasSystemd(pk) {
		pk["systemd"] = true
	}
	for p, gs := range packageGroups {
		for _, g := range gs {
			known[g] = known[g] || pk[p]
		}
	}
	for i, u := range d.Users {
		for j, g := range u.Groups {
			if !known[g] {
				bad(fmt.Sprintf("group %q is not a group of Debian's base system (base-passwd, systemd), of a package pibake knows or of an earlier user: the build would stop at the users; check the name (a group another package makes is only known to the build)", g),
					"users", strconv.Itoa(i), "groups", strconv.Itoa(j))
			}
		}
		known[u.Name] = true
	}
}

// checkUnits: the units the health check waits for and the units
// containers start after must come from somewhere.
func (d *Definition) checkUnits(pk map[string]bool, bad func(msg string, p ...string)) {
	have := d.providedUnits()
	provided := func(u string) bool {
		if have[u] {
			return true
		}
		base, _, _ := strings.Cut(strings.TrimSuffix(u, path.Ext(u)), "@")
		if d.hasSystemd(pk) && (strings.HasPrefix(u, "systemd-") || slices.Contains(systemdUnits, base) || strings.HasSuffix(u, ".target")) {
			return true
		}
		return pk[base] || slices.ContainsFunc(packageUnits[u], func(p string) bool { return pk[p] })
	}
	if u := d.Updater; u != nil {
		for i, n := range u.Health.Units {
			if !provided(n) {
				bad(d.unitMsg(n, have), "updater", "health", "units", strconv.Itoa(i))
			}
		}
	}
	for i, c := range d.Containers {
		for j, a := range c.After {
			if strings.Contains(a, ".") && !provided(a) {
				bad(d.unitMsg(a, have), "containers", strconv.Itoa(i), "after", strconv.Itoa(j))
			}
		}
	}
}

func (d *Definition) unitMsg(u string, have map[string]bool) string {
	msg := fmt.Sprintf("no service, container, overlay or package of this image provides the unit %s: every update would fail its health check on the device and roll back", u)
	if best := closest(u, have); best != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	}
	return msg
}

// systemdUnits are units systemd ships that are not named systemd-*.
var systemdUnits = []string{"getty", "serial-getty", "console-getty", "dbus", "user", "sys-kernel-debug"}

// packageUnits are units whose names differ from their package's.
var packageUnits = map[string][]string{
	"ssh.service":            {"openssh-server"},
	"sshd.service":           {"openssh-server"},
	"ssh.socket":             {"openssh-server"},
	"docker.service":         {"docker.io"},
	"docker.socket":          {"docker.io"},
	"podman.socket":          {"podman"},
	"podman.service":         {"podman"},
	"wpa_supplicant.service": {"wpasupplicant"},
	"cron.service":           {"cron"},
}

// providedUnits are the units the definition itself puts in the image:
// its services, its containers' units, pibake's own units and the unit
// files and Quadlet files of its overlays.
func (d *Definition) providedUnits() map[string]bool {
	have := map[string]bool{}
	for _, s := range d.Services {
		_, u := ServiceFile(d.Dir, s.Name)
		have[u] = true
	}
	for _, c := range d.Containers {
		have[c.Name+".service"] = true
	}
	if len(d.Containers) > 0 && d.ContainerRuntime == "docker" {
		have["pibake-docker-images.service"] = true
	}
	for _, f := range system.Files(bootchain.MaxTries, true, d.Updater != nil) {
		if hasUnitSuffix(f.Path) {
			have[path.Base(f.Path)] = true
		}
	}
	for _, o := range d.Overlays {
		d.overlayUnits(o, have)
	}
	return have
}

// unitDirs are where systemd reads units; quadletDirs where its Quadlet
// generator reads the files it turns into units.
var (
	unitDirs    = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}
	quadletDirs = []string{"/etc/containers/systemd", "/usr/share/containers/systemd"}
	// quadletUnits: the unit Quadlet makes of NAME.<ext> is NAME<suffix>.
	quadletUnits = map[string]string{".container": ".service", ".kube": ".service", ".volume": "-volume.service",
		".network": "-network.service", ".pod": "-pod.service", ".image": "-image.service", ".build": "-build.service"}
)

func (d *Definition) overlayUnits(o Overlay, have map[string]bool) {
	dir := OverlayDir(d.Dir, o.Name)
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		dest := path.Join(o.Dest, filepath.ToSlash(rel))
		parent, name := path.Dir(dest), path.Base(dest)
		if slices.Contains(unitDirs, parent) && hasUnitSuffix(name) {
			have[name] = true
		}
		if slices.ContainsFunc(quadletDirs, func(q string) bool { return strings.HasPrefix(parent, q) }) {
			ext := path.Ext(name)
			if s, ok := quadletUnits[ext]; ok {
				have[strings.TrimSuffix(name, ext)+s] = true
			}
		}
		return nil
	})
}

// closest is the name of have nearest to u, if one is a typo away.
func closest(u string, have map[string]bool) string {
	best, bestD := "", 3
	for h := range have {
		if dd := editdist.Levenshtein(u, h); dd < bestD || dd == bestD && h < best {
			best, bestD = h, dd
		}
	}
	return best
}
