// Package imagedef loads, merges and validates image definitions: the YAML
// files in images/ that declare what a pibake image contains.
//
// Loading is strict: an unknown field, a value of the wrong type or a
// semantic error (unknown board, missing overlay folder, bad mode) is an
// error that names the file, the line and the field. Per-environment
// overrides (environments.test, .preprod, .prod, ...) are merged onto the
// base definition before decoding, so their errors point at their own lines.
// The field reference lives in docs/image-definition.md.
package imagedef

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/updater/config"
)

// Definition is an image definition after the chosen environment's overrides
// have been merged in and defaults applied.
type Definition struct {
	Name        string      `yaml:"name"`
	Version     string      `yaml:"version"`
	Description string      `yaml:"description"`
	Boards      []string    `yaml:"boards"`
	Bootloader  string      `yaml:"bootloader"`
	Debian      Debian      `yaml:"debian"`
	Partitions  Partitions  `yaml:"partitions"`
	Rootfs      Rootfs      `yaml:"rootfs"`
	Hostname    string      `yaml:"hostname"`
	Users       []User      `yaml:"users"`
	Overlays    []Overlay   `yaml:"overlays"`
	Services    []Service   `yaml:"services"`
	Containers  []Container `yaml:"containers"`
	// ContainerRuntime runs the containers: podman (Quadlet, the default)
	// or docker.
	ContainerRuntime string                `yaml:"container_runtime"`
	Updater          *Updater              `yaml:"updater"`
	Network          Network               `yaml:"network"`
	Environments     map[string]yamlIgnore `yaml:"environments"`

	// Set by Load, not by YAML.
	File string `yaml:"-"` // path the definition was read from
	Env  string `yaml:"-"` // environment merged in, "" for none
	Dir  string `yaml:"-"` // repository root that overlays/ and services/ are relative to

	node *yaml.Node // the merged YAML, for the lines of Check's errors
}

// yamlIgnore accepts any YAML value; environments are merged before decoding.
type yamlIgnore struct{}

// Debian describes the base root filesystem bootstrapped from Debian.
type Debian struct {
	Suite      string   `yaml:"suite"`
	Mirror     string   `yaml:"mirror"`
	Components []string `yaml:"components"`
	Variant    string   `yaml:"variant"`
	Packages   []string `yaml:"packages"`
	// PathExclude and PathInclude are dpkg path filters (globs) applied
	// when the base is installed: e.g. documentation, manual pages and
	// translations an appliance never reads. An include re-admits what an
	// exclude matched (licence texts under /usr/share/doc/*/copyright).
	PathExclude []string `yaml:"path_exclude"`
	PathInclude []string `yaml:"path_include"`
	// Updates and Security read SUITE-updates (on Mirror) and
	// SUITE-security (on SecurityMirror) beside the suite; unset means on,
	// except for sid, unstable and experimental, which have neither.
	// Backports reads SUITE-backports (off unless set), whose packages
	// are taken only when asked for as name/SUITE-backports.
	Updates        *bool  `yaml:"updates"`
	Security       *bool  `yaml:"security"`
	SecurityMirror string `yaml:"security_mirror"`
	Backports      bool   `yaml:"backports"`
	// Snapshot and SecuritySnapshot are snapshots of the two mirrors
	// (e.g. of the day the lock was made), tried for a locked package
	// the mirror no longer has.
	Snapshot         string `yaml:"snapshot"`
	SecuritySnapshot string `yaml:"security_snapshot"`
}

// UsesUpdates reports whether the definition reads SUITE-updates.
func (d Debian) UsesUpdates() bool { return orRolling(d.Updates, d.Suite) }

// UsesSecurity reports whether the definition reads SUITE-security.
func (d Debian) UsesSecurity() bool { return orRolling(d.Security, d.Suite) }

// orRolling is *b, or when unset whether suite is a release with
// -updates and -security archives (not sid, unstable or experimental).
func orRolling(b *bool, suite string) bool {
	if b != nil {
		return *b
	}
	return !slices.Contains(rollingSuites, suite)
}

// rollingSuites have no -updates, -security or -backports archive.
var rollingSuites = []string{"sid", "unstable", "experimental", "rc-buggy"}

// Rootfs shapes the read-only root filesystem (squashfs).
type Rootfs struct {
	// CompressionLevel is the compressor's level: zstd 1-22 (gzip, for
	// a kernel without zstd, uses at most 9). Higher packs smaller and
	// builds slower (docs/building.md has the figures).
	CompressionLevel int `yaml:"compression_level"`
}

// DefaultCompressionLevel: zstd 9 packs the demo's root 4.8 % larger
// than tar2sqfs's default 15, in a sixth of the time.
const DefaultCompressionLevel = 9

// Partitions holds the sizes of the partitions of the A/B layout.
// boot and root are per slot: the image holds two of each.
type Partitions struct {
	Bootsel Size `yaml:"bootsel"`
	Boot    Size `yaml:"boot"`
	Root    Size `yaml:"root"`
	Data    Size `yaml:"data"`
}

// User is a login account created in the root filesystem. Passwords are
// always locked: access is by SSH public key.
type User struct {
	Name    string   `yaml:"name"`
	UID     int      `yaml:"uid"`
	Groups  []string `yaml:"groups"`
	Shell   string   `yaml:"shell"`
	SSHKeys []string `yaml:"ssh_keys"`
}

// Overlay copies a folder under overlays/ into the root filesystem.
type Overlay struct {
	Name  string        `yaml:"name"`
	Dest  string        `yaml:"dest"`
	Owner string        `yaml:"owner"`
	Files []OverlayFile `yaml:"files"`
}

// OverlayFile overrides the mode or owner of one path of an overlay.
type OverlayFile struct {
	Path  string `yaml:"path"`
	Mode  string `yaml:"mode"`
	Owner string `yaml:"owner"`
}

// Updater bakes the A/B update agent into the image (see docs/updates.md).
type Updater struct {
	Server  string `yaml:"server"`  // repository URL the device polls
	Channel string `yaml:"channel"` // default "stable"
	// Channels are the other channels a device's override may switch to.
	Channels []string `yaml:"channels"`
	Keys     []string `yaml:"keys"` // trusted public keys: minisign key text, or a .pub file relative to the repository
	// Window, if set, is when devices may reboot into a release they
	// downloaded (days, from, to, timezone; see docs/fleet.md); the
	// build resolves the time zone (window.go).
	Window *config.Window `yaml:"window"`
	// Inhibit bounds how long an application may defer that reboot.
	Inhibit config.Inhibit `yaml:"inhibit"`
	// Revoked are key IDs (16 hex digits) refused even if listed in keys.
	Revoked []string      `yaml:"revoked"`
	Poll    time.Duration `yaml:"poll"` // default 15m
	Health  config.Health `yaml:"health"`
	// Report has the agent report to the team's MQTT broker (report.go).
	Report *UpdaterReport `yaml:"report"`
}

// Service installs a unit from services/ and, unless Enable is false,
// enables it by its [Install] section.
type Service struct {
	Name   string `yaml:"name"`
	Enable *bool  `yaml:"enable"`
}

// Enabled reports whether the unit is to be enabled (the default).
func (s Service) Enabled() bool { return s.Enable == nil || *s.Enable }

// Defaults applied when a field is absent.
const (
	DefaultSuite  = "trixie"
	DefaultMirror = "http://deb.debian.org/debian"
	// DefaultSecurityMirror serves SUITE-security.
	DefaultSecurityMirror = "http://deb.debian.org/debian-security"
	DefaultVariant        = "minbase"
	DefaultBootloader     = string(bootchain.DefaultChain)
	DefaultRuntime        = "podman"
)

// DefaultComponents are the archive components used when none are given;
// raspi-firmware lives in non-free-firmware.
var DefaultComponents = []string{"main", "non-free-firmware"}

// DefaultPartitions are the partition sizes used when the definition gives none.
var DefaultPartitions = Partitions{Bootsel: 64 * MiB, Boot: 128 * MiB, Root: 1 * GiB, Data: 256 * MiB}

// MinFAT is the smallest FAT32 partition pibake writes.
const MinFAT = 40 * MiB

// Known values.
var (
	KnownBoards      = firmware.Names()
	KnownBootloaders = bootchain.ChainNames()
	KnownRuntimes    = []string{"podman", "docker"}
	KnownVariants    = []string{"essential", "apt", "required", "minbase", "buildd", "important", "standard"}
	KnownEnvs        = []string{"test", "preprod", "prod"}
)

var (
	reName     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	reHostname = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	reUser     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	rePackage  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	reVersion  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+~_-]{0,63}$`)
	reOwner    = regexp.MustCompile(`^[a-z0-9_][a-z0-9_-]*:[a-z0-9_][a-z0-9_-]*$`)
	reMode     = regexp.MustCompile(`^0?[0-7]{3,4}$`)
)

// DefaultBoard is the board built when none is asked for: the first listed.
func (d *Definition) DefaultBoard() string {
	if len(d.Boards) == 0 {
		return ""
	}
	return d.Boards[0]
}

// EnvNames lists the environments the definition declares, sorted.
func (d *Definition) EnvNames() []string {
	names := make([]string, 0, len(d.Environments))
	for n := range d.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (d *Definition) applyDefaults() {
	if d.ContainerRuntime == "" {
		d.ContainerRuntime = DefaultRuntime
	}
	if d.Bootloader == "" {
		d.Bootloader = DefaultBootloader
	}
	if d.Debian.Suite == "" {
		d.Debian.Suite = DefaultSuite
	}
	if d.Debian.Mirror == "" {
		d.Debian.Mirror = DefaultMirror
	}
	d.Debian.Mirror = strings.TrimRight(d.Debian.Mirror, "/")
	if d.Debian.SecurityMirror == "" {
		d.Debian.SecurityMirror = DefaultSecurityMirror
	}
	d.Debian.SecurityMirror = strings.TrimRight(d.Debian.SecurityMirror, "/")
	if len(d.Debian.Components) == 0 {
		d.Debian.Components = append([]string(nil), DefaultComponents...)
	}
	if d.Debian.Variant == "" {
		d.Debian.Variant = DefaultVariant
	}
	if d.Rootfs.CompressionLevel == 0 {
		d.Rootfs.CompressionLevel = DefaultCompressionLevel
	}
	p := &d.Partitions
	if p.Bootsel == 0 {
		p.Bootsel = DefaultPartitions.Bootsel
	}
	if p.Boot == 0 {
		p.Boot = DefaultPartitions.Boot
	}
	if p.Root == 0 {
		p.Root = DefaultPartitions.Root
	}
	if p.Data == 0 {
		p.Data = DefaultPartitions.Data
	}
	if d.Hostname == "" {
		d.Hostname = d.Name
	}
	for i := range d.Users {
		u := &d.Users[i]
		if u.Shell == "" {
			u.Shell = "/bin/bash"
		}
	}
	if u := d.Updater; u != nil {
		if u.Channel == "" {
			u.Channel = "stable"
		}
		if u.Poll == 0 {
			u.Poll = 15 * time.Minute
		}
		if u.Health.Deadline == 0 {
			u.Health.Deadline = 5 * time.Minute
		}
	}
	for i := range d.Overlays {
		o := &d.Overlays[i]
		if o.Dest == "" {
			o.Dest = "/"
		}
		if o.Owner == "" {
			o.Owner = "root:root"
		}
	}
}

// fieldError is a validation error at a YAML location.
type fieldError struct {
	path []string
	msg  string
}

func (e fieldError) Error() string { return fmt.Sprintf("%s: %s", strings.Join(e.path, "."), e.msg) }
