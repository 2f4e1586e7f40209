package imagedef

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
)

// UnitSuffixes are the systemd unit types services/ may hold.
var UnitSuffixes = []string{".service", ".timer", ".socket", ".path", ".mount", ".target"}

// ServiceFile returns the path under root of the unit named by s.Name and
// the unit's file name: "hello" means services/hello.service,
// "hello.timer" means services/hello.timer.
func ServiceFile(root, name string) (file, unit string) {
	unit = name
	if !hasUnitSuffix(name) {
		unit = name + ".service"
	}
	return filepath.Join(root, "services", unit), unit
}

func hasUnitSuffix(name string) bool {
	for _, s := range UnitSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// OverlayDir returns the folder an overlay is read from.
func OverlayDir(root, name string) string { return filepath.Join(root, "overlays", name) }

func (d *Definition) validate() []fieldError {
	var errs []fieldError
	bad := func(msg string, p ...string) { errs = append(errs, fieldError{path: p, msg: msg}) }

	if d.Name == "" {
		bad("required: the image name, e.g. name: demo", "name")
	} else if !reName.MatchString(d.Name) {
		bad(fmt.Sprintf("%q is not a valid name: use lower-case letters, digits and '-' (max 63)", d.Name), "name")
	}
	if d.Version == "" {
		bad("required: the image version, e.g. version: 1.0.0", "version")
	} else if !reVersion.MatchString(d.Version) {
		bad(fmt.Sprintf("%q is not a valid version: use letters, digits and . + ~ _ -", d.Version), "version")
	}
	if len(d.Boards) == 0 {
		bad("required: at least one target board ("+strings.Join(KnownBoards, ", ")+")", "boards")
	}
	seen := map[string]bool{}
	for i, b := range d.Boards {
		switch {
		case !slices.Contains(KnownBoards, b):
			bad(fmt.Sprintf("unknown board %q (known: %s)", b, strings.Join(KnownBoards, ", ")), "boards", strconv.Itoa(i))
		case seen[b]:
			bad(fmt.Sprintf("board %q listed twice", b), "boards", strconv.Itoa(i))
		}
		seen[b] = true
	}
	if chain, err := bootchain.ParseChain(d.Bootloader); err != nil {
		bad(fmt.Sprintf("unknown bootloader %q (known: %s)", d.Bootloader, strings.Join(KnownBootloaders, ", ")), "bootloader")
	} else if chain == bootchain.Tryboot {
		for i, b := range d.Boards {
			if fb, err := firmware.Lookup(b); err == nil && !fb.Tryboot {
				bad(fmt.Sprintf("board %q cannot use bootloader tryboot: the firmware's tryboot_a_b needs a Pi 4 or later; use bootloader: uboot", b), "boards", strconv.Itoa(i))
			}
		}
	}

	d.validateDebian(bad)
	d.validateSizes(bad)
	errs = append(errs, d.Network.validate(d)...)
	if !reHostname.MatchString(d.Hostname) {
		bad(fmt.Sprintf("%q is not a valid host name (letters, digits, '-', max 63)", d.Hostname), "hostname")
	}
	d.validateUsers(bad)
	d.validateOverlays(bad)
	d.validateServices(bad)
	d.validateContainers(bad)
	d.validateUpdater(bad)

	for _, e := range d.EnvNames() {
		if !reName.MatchString(e) {
			bad(fmt.Sprintf("%q is not a valid environment name (usual: %s)", e, strings.Join(KnownEnvs, ", ")), "environments", e)
		}
	}
	return errs
}

// validateDebian checks the suite, mirror, components, variant, dpkg path
// filters and packages.
func (d *Definition) validateDebian(bad func(msg string, p ...string)) {
	deb := d.Debian
	if !regexpSuite(deb.Suite) {
		bad(fmt.Sprintf("%q is not a valid suite name (e.g. trixie)", deb.Suite), "debian", "suite")
	}
	for field, u := range map[string]string{"mirror": deb.Mirror, "security_mirror": deb.SecurityMirror, "snapshot": deb.Snapshot, "security_snapshot": deb.SecuritySnapshot} {
		if (u != "" || field == "mirror") && !(strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "file:///")) {
			bad(fmt.Sprintf("%s %q must be an http://, https:// or file:/// URL", strings.ReplaceAll(field, "_", " "), u), "debian", field)
		}
	}
	if slices.Contains(rollingSuites, deb.Suite) {
		for field, on := range map[string]bool{"updates": deb.Updates != nil && *deb.Updates, "security": deb.Security != nil && *deb.Security, "backports": deb.Backports} {
			if on {
				bad(fmt.Sprintf("%s has no %s-%s archive: remove debian.%s", deb.Suite, deb.Suite, field, field), "debian", field)
			}
		}
	}
	for i, c := range deb.Components {
		if !regexpSuite(c) {
			bad(fmt.Sprintf("%q is not a valid component", c), "debian", "components", strconv.Itoa(i))
		}
	}
	if !slices.Contains(KnownVariants, deb.Variant) {
		bad(fmt.Sprintf("unknown variant %q (known: %s)", deb.Variant, strings.Join(KnownVariants, ", ")), "debian", "variant")
	}
	for field, globs := range map[string][]string{"path_exclude": deb.PathExclude, "path_include": deb.PathInclude} {
		for i, g := range globs {
			if !strings.HasPrefix(g, "/") || strings.ContainsAny(g, " \t\n\r") || strings.Contains(g, "..") || g == "/" || g == "/*" {
				bad(fmt.Sprintf("%q is not a dpkg path filter: an absolute glob without spaces, below / (e.g. /usr/share/man/*)", g), "debian", field, strconv.Itoa(i))
			}
		}
	}
	seen := map[string]bool{}
	for i, p := range deb.Packages {
		p, suite, from := strings.Cut(p, "/")
		switch {
		case from && suite != deb.Suite+"-backports":
			bad(fmt.Sprintf("%s/%s: a package is asked for from one archive only as %s/%s-backports (versions are pinned by the lock file)", p, suite, p, deb.Suite), "debian", "packages", strconv.Itoa(i))
		case from && !deb.Backports:
			bad(fmt.Sprintf("%s/%s asks for the backports archive, which this definition does not read: set debian.backports: true (or ask for %s alone)", p, suite, p), "debian", "packages", strconv.Itoa(i))
		case !rePackage.MatchString(p):
			bad(fmt.Sprintf("%q is not a Debian package name (versions are pinned by the lock file, not here)", p), "debian", "packages", strconv.Itoa(i))
		case seen[p]:
			bad(fmt.Sprintf("package %q listed twice", p), "debian", "packages", strconv.Itoa(i))
		}
		seen[p] = true
	}
}

// validateSizes checks the compression level and the partition sizes.
func (d *Definition) validateSizes(bad func(msg string, p ...string)) {
	if l := d.Rootfs.CompressionLevel; l < 1 || l > 22 {
		bad(fmt.Sprintf("%d is not a compression level: 1 (fastest) to 22 (smallest)", l), "rootfs", "compression_level")
	}
	pt := d.Partitions
	for _, c := range []struct {
		name string
		v, n Size
	}{{"bootsel", pt.Bootsel, MinFAT}, {"boot", pt.Boot, MinFAT}, {"root", pt.Root, 16 * MiB}, {"data", pt.Data, 16 * MiB}} {
		if c.v < c.n {
			bad(fmt.Sprintf("%s is too small: the minimum is %s", c.v, c.n), "partitions", c.name)
		}
	}
	if l, err := layout.Compute(layout.Sizes{Bootsel: int64(pt.Bootsel), Boot: int64(pt.Boot), Root: int64(pt.Root), Data: int64(pt.Data)}); err == nil && l.DiskSize > MaxCard {
		bad(fmt.Sprintf("the image would be %.1f GiB, larger than the largest card a Pi reads (SDXC, 2 TB, and an MBR disk addresses at most 2 TiB): this is the data partition's size in the image, which first boot grows to fill the card, so keep it small (the default is %s)",
			float64(l.DiskSize)/float64(GiB), DefaultPartitions.Data), "partitions", largest(pt))
	}
}

// MaxCard is the largest card an image may fill: SDXC's 2 TB, below the
// 2 TiB an MBR partition table addresses.
const MaxCard = 2_000_000_000_000

// largest names the largest partition, the one to blame for a disk
// that is too large.
func largest(pt Partitions) string {
	name, v := "data", pt.Data
	for _, c := range []struct {
		n string
		v Size
	}{{"root", 2 * pt.Root}, {"boot", 2 * pt.Boot}, {"bootsel", pt.Bootsel}} {
		if c.v > v {
			name, v = c.n, c.v
		}
	}
	return name
}

// validateUsers checks the users: names, uids, shells and SSH keys.
func (d *Definition) validateUsers(bad func(msg string, p ...string)) {
	seen := map[string]bool{}
	uids := map[int]bool{}
	for i, u := range d.Users {
		at := []string{"users", strconv.Itoa(i)}
		switch {
		case !reUser.MatchString(u.Name):
			bad(fmt.Sprintf("%q is not a valid user name", u.Name), append(at, "name")...)
		case seen[u.Name] || u.Name == "root":
			bad(fmt.Sprintf("user %q is defined twice or is a system account", u.Name), append(at, "name")...)
		}
		seen[u.Name] = true
		if u.UID != 0 && (u.UID < 1000 || u.UID > 59999) {
			bad(fmt.Sprintf("uid %d is outside 1000..59999 (leave it out to have one assigned)", u.UID), append(at, "uid")...)
		} else if u.UID != 0 && uids[u.UID] {
			bad(fmt.Sprintf("uid %d is used twice", u.UID), append(at, "uid")...)
		}
		uids[u.UID] = true
		if !strings.HasPrefix(u.Shell, "/") {
			bad(fmt.Sprintf("shell %q must be an absolute path", u.Shell), append(at, "shell")...)
		}
		for j, k := range u.SSHKeys {
			f := strings.Fields(k)
			if len(f) < 2 || !(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-") || strings.HasPrefix(f[0], "sk-")) {
				bad("not an SSH public key (want a line like 'ssh-ed25519 AAAA... comment')", append(at, "ssh_keys", strconv.Itoa(j))...)
			}
		}
	}
}

// validateOverlays checks each overlay folder and the files it sets
// modes or owners of.
func (d *Definition) validateOverlays(bad func(msg string, p ...string)) {
	for i, o := range d.Overlays {
		at := []string{"overlays", strconv.Itoa(i)}
		if o.Name == "" || strings.ContainsAny(o.Name, `/\`) || o.Name == "." || o.Name == ".." {
			bad(fmt.Sprintf("%q is not an overlay folder name", o.Name), append(at, "name")...)
			continue
		}
		dir := OverlayDir(d.Dir, o.Name)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			bad(fmt.Sprintf("overlay folder %s does not exist (create it or fix the name)", dir), append(at, "name")...)
			continue
		}
		if !path.IsAbs(o.Dest) || path.Clean(o.Dest) != o.Dest {
			bad(fmt.Sprintf("dest %q must be a clean absolute path", o.Dest), append(at, "dest")...)
		}
		if !reOwner.MatchString(o.Owner) {
			bad(fmt.Sprintf("owner %q must be user:group (names or numbers)", o.Owner), append(at, "owner")...)
		}
		for j, f := range o.Files {
			fat := append(append([]string(nil), at...), "files", strconv.Itoa(j))
			clean := path.Clean(f.Path)
			if f.Path == "" || path.IsAbs(f.Path) || clean != f.Path || strings.HasPrefix(clean, "../") || clean == ".." {
				bad(fmt.Sprintf("path %q must be a clean path relative to the overlay folder", f.Path), append(fat, "path")...)
				continue
			}
			if _, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil {
				bad(fmt.Sprintf("%s is not in overlay %s", f.Path, dir), append(fat, "path")...)
			}
			if f.Mode != "" && !reMode.MatchString(f.Mode) {
				bad(fmt.Sprintf("mode %q must be octal, e.g. \"0640\" (quote it so YAML keeps it a string)", f.Mode), append(fat, "mode")...)
			}
			if f.Owner != "" && !reOwner.MatchString(f.Owner) {
				bad(fmt.Sprintf("owner %q must be user:group", f.Owner), append(fat, "owner")...)
			}
		}
	}
}

// validateServices checks that each unit is named once and exists in
// services/.
func (d *Definition) validateServices(bad func(msg string, p ...string)) {
	seen := map[string]bool{}
	for i, s := range d.Services {
		at := []string{"services", strconv.Itoa(i), "name"}
		if s.Name == "" || strings.ContainsAny(s.Name, `/\`) {
			bad(fmt.Sprintf("%q is not a unit name", s.Name), at...)
			continue
		}
		file, unit := ServiceFile(d.Dir, s.Name)
		if seen[unit] {
			bad(fmt.Sprintf("unit %s listed twice", unit), at...)
		}
		seen[unit] = true
		if _, err := os.Stat(file); err != nil {
			bad(fmt.Sprintf("no unit file %s (services are read from services/)", file), at...)
		}
	}
}

// validateUpdater checks the update agent's keys and configuration.
func (d *Definition) validateUpdater(bad func(msg string, p ...string)) {
	if u := d.Updater; u != nil {
		if _, err := d.UpdaterKeys(); err != nil {
			bad(err.Error(), "updater", "keys")
		}
		for i, ch := range append([]string{u.Channel}, u.Channels...) {
			if err := channel.CheckName(ch); err != nil {
				at := []string{"updater", "channel"}
				if i > 0 {
					at = []string{"updater", "channels", strconv.Itoa(i - 1)}
				}
				bad(err.Error()+"; pibake publish signs no other", at...)
			}
		}
		if _, err := d.ReportConfig(); err != nil {
			bad(strings.TrimPrefix(err.Error(), "report: "), "updater", "report")
		}
		c := config.Config{Server: u.Server, Channel: u.Channel, Channels: u.Channels, Board: "x", Keys: u.Keys, Revoked: u.Revoked, Poll: u.Poll, Health: u.Health}
		c.Window, c.Inhibit = u.Window, u.Inhibit
		if err := c.Validate(); err != nil {
			bad(strings.TrimPrefix(err.Error(), "updater config: "), "updater")
		}
		if _, err := u.ResolvedWindow(time.Now()); err != nil {
			bad(err.Error(), "updater", "window")
		}
	}
}

func regexpSuite(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// ParseMode parses an octal mode string from a definition.
func ParseMode(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("mode %q: %w", s, err)
	}
	return v, nil
}

// UpdaterKeys returns the trusted keys' text: inline minisign keys as they
// are, .pub files read from the repository.
func (d *Definition) UpdaterKeys() ([]string, error) {
	var out []string
	for _, k := range d.Updater.Keys {
		if strings.HasSuffix(k, ".pub") {
			data, err := os.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(k)))
			if err != nil {
				return nil, fmt.Errorf("key file: %w (make one with 'pibake keygen')", err)
			}
			k = string(data)
		}
		pk, err := channel.ParsePublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("key %.20q: %w", k, err)
		}
		text, _ := pk.MarshalText()
		lines := strings.Split(strings.TrimSpace(string(text)), "\n")
		out = append(out, lines[len(lines)-1]) // the key, without minisign's comment line
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no trusted keys: a device would accept no update")
	}
	return out, nil
}
