// Package config is the device agent's configuration:
// /usr/lib/pibake/updater.yaml, written by the image build from the
// definition into the read-only root filesystem (no overlay covers /usr,
// so nothing on the data partition can shadow it), with an optional
// override on the data partition (so a fleet operator can point one box
// at another channel without a rebuild). The override may set only the
// server, the poll interval and the channel, among the channels the
// image allows: the keys, the revoked key IDs, the image's name and build
// time, the health checks (commands run as root), the maintenance window
// and the inhibit's bound come from the signed image alone, never from
// the writable data partition.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pibake/pibake/bootchain"
	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/internal/yamlerr"
)

// Default paths on the device. ImagePath is in the read-only root, under
// /usr, which the initramfs init never overlays (it overlays /etc and
// /var): the image's own bytes, whatever /data holds.
const (
	ImagePath    = "/usr/lib/pibake/updater.yaml"
	OverridePath = "/data/pibake/updater.yaml"
)

// HTTPCheck probes a URL; it passes on the expected status (default 200).
type HTTPCheck struct {
	URL    string `yaml:"url"`
	Status int    `yaml:"status,omitempty"`
}

// Health lists the checks a trial boot must pass within Deadline.
type Health struct {
	Deadline time.Duration `yaml:"deadline,omitempty"`
	Units    []string      `yaml:"units,omitempty"`
	HTTP     []HTTPCheck   `yaml:"http,omitempty"`
	Commands [][]string    `yaml:"commands,omitempty"`
}

// Config is the agent's configuration.
type Config struct {
	Server  string `yaml:"server"`
	Channel string `yaml:"channel"`
	// Channels the override may switch to, besides Channel.
	Channels []string `yaml:"channels,omitempty"`
	// Image is the image's name: documents of other images are refused.
	// Required in an image's configuration (Load).
	Image string `yaml:"image,omitempty"`
	// Version is the image's version: a device flashed with the release
	// its channel offers recognises it and does not install it again.
	Version string `yaml:"version,omitempty"`
	// Built is a time the image cannot have been built before (Unix
	// seconds; the build's epoch, see docs/updates.md): a device whose
	// clock reads earlier (no RTC, no time sync yet) judges expiry
	// against it instead. Required in an image's configuration (Load).
	Built int64  `yaml:"built,omitempty"`
	Board string `yaml:"board"`
	// Agent is the version of pibake the image's agent was built from (the
	// manifest's agent.version), which its reports carry.
	Agent string `yaml:"agent,omitempty"`
	// Bootloader is the image's boot chain: uboot (default) or tryboot.
	Bootloader string   `yaml:"bootloader,omitempty"`
	Keys       []string `yaml:"keys"`
	// Revoked are key IDs (16 hex digits, as minisign prints them) whose
	// documents are refused even if Keys lists the key.
	Revoked []string      `yaml:"revoked,omitempty"`
	Poll    time.Duration `yaml:"poll,omitempty"`
	Health  Health        `yaml:"health,omitempty"`
	// Window, if set, is when the device may reboot into a release it
	// has installed (window.go); Inhibit bounds an application's deferral.
	Window  *Window `yaml:"window,omitempty"`
	Inhibit Inhibit `yaml:"inhibit,omitempty"`
	// TimeWait is how long after boot the agent waits for a synchronised
	// clock before its first check of the channel (0: no wait). After it,
	// the agent checks anyway, judging expiry against the later of the
	// clock and Built.
	TimeWait time.Duration `yaml:"time_wait,omitempty"`
	// Report, when set, has the agent report its state to the team's
	// MQTT broker (report.go); nil: no reporting.
	Report *Report `yaml:"report,omitempty"`
}

// Parse reads one file's YAML strictly.
func Parse(name string, data []byte) (Config, error) {
	var c Config
	err := yamlerr.Unmarshal(name, data, &c)
	return c, err
}

// Override is what /data/pibake/updater.yaml may set.
type Override struct {
	Server  string        `yaml:"server,omitempty"`
	Channel string        `yaml:"channel,omitempty"`
	Poll    time.Duration `yaml:"poll,omitempty"`
}

// ParseOverride reads an override strictly: a field of the image's
// configuration that the override may not set is named in the error.
func ParseOverride(name string, data []byte) (Override, error) {
	var fields map[string]any
	if err := yamlerr.Unmarshal(name, data, &fields); err != nil {
		return Override{}, err
	}
	for k := range fields {
		switch k {
		case "server", "channel", "poll":
		case "keys", "revoked", "health", "board", "bootloader", "image", "version", "channels", "built", "window", "inhibit":
			return Override{}, fmt.Errorf("%s: %s cannot be overridden on the data partition: it comes from the image", name, k)
		default:
			return Override{}, fmt.Errorf("%s: unknown field %q (an override may set server, channel and poll)", name, k)
		}
	}
	var o Override
	err := yamlerr.Unmarshal(name, data, &o)
	return o, err
}

// Load reads the image's configuration and merges the override, if any.
func Load(image, override string) (Config, error) {
	data, err := os.ReadFile(image)
	if err != nil {
		return Config{}, fmt.Errorf("updater config: %w", err)
	}
	c, err := Parse(image, data)
	if err != nil {
		return c, err
	}
	if err := c.checkImage(image); err != nil {
		return c, err
	}
	if data, err := os.ReadFile(override); err == nil {
		o, err := ParseOverride(override, data)
		if err != nil {
			return c, err
		}
		if o.Channel != "" && o.Channel != c.Channel && !slices.Contains(c.Channels, o.Channel) {
			return c, fmt.Errorf("%s: channel %q is not one this image allows (%s)", override, o.Channel, strings.Join(append([]string{c.Channel}, c.Channels...), ", "))
		}
		c = merge(c, o)
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("updater config: %w", err)
	}
	if c.Poll == 0 {
		c.Poll = 15 * time.Minute
	}
	if c.Health.Deadline == 0 {
		c.Health.Deadline = 5 * time.Minute
	}
	return c, c.Validate()
}

// checkImage checks what only an image's own configuration carries: the
// build always writes the image's name and its build time, and without
// them the agent would skip the image check of every document and judge
// expiry at 1970 on a device without a clock.
func (c Config) checkImage(file string) error {
	switch {
	case c.Image == "":
		return fmt.Errorf("%s: no image: (the image's name, which every channel document must carry): the build writes it; rebuild the image", file)
	case c.Built < minBuilt:
		return fmt.Errorf("%s: built: %d is missing or before 1980 (the image's build time, the floor of the clock that judges expiry): the build writes it; rebuild the image", file, c.Built)
	case c.Window != nil && c.Window.Timezone != "" && c.Window.Timezone != "UTC" && len(c.Window.Changes) == 0:
		return fmt.Errorf("%s: window: timezone %s without its offsets (changes:): the build writes them; rebuild the image", file, c.Window.Timezone)
	}
	return nil
}

// minBuilt is the earliest build time an image can carry: its files' FAT
// timestamps start in 1980 (the builder refuses an earlier epoch).
const minBuilt = 315532800

// merge: every field the override sets replaces the image's.
func merge(c Config, o Override) Config {
	if o.Server != "" {
		c.Server = o.Server
	}
	if o.Channel != "" {
		c.Channel = o.Channel
	}
	if o.Poll != 0 {
		c.Poll = o.Poll
	}
	return c
}

// Validate checks the merged configuration.
func (c Config) Validate() error {
	u, err := url.Parse(c.Server)
	switch {
	case c.Server == "":
		return errors.New("updater config: no server (the repository URL)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file"):
		return fmt.Errorf("updater config: server %q is not an http(s) or file URL", c.Server)
	case c.Channel == "":
		return errors.New("updater config: no channel")
	case slices.Contains(c.Channels, ""):
		return errors.New("updater config: an empty name in channels")
	case c.TimeWait < 0:
		return fmt.Errorf("updater config: time_wait %s is negative", c.TimeWait)
	case c.Board == "":
		return errors.New("updater config: no board")
	case len(c.Keys) == 0:
		return errors.New("updater config: no trusted keys: this device would accept no update")
	case c.Poll < time.Minute:
		return fmt.Errorf("updater config: poll %s is shorter than a minute", c.Poll)
	case c.Inhibit.MaxDelay < 0 || c.Inhibit.MaxDelay > 30*24*time.Hour:
		return fmt.Errorf("updater config: inhibit max_delay %s is outside 0s..720h (30 days)", c.Inhibit.MaxDelay)
	}
	if c.Window != nil {
		if err := c.Window.Check(); err != nil {
			return fmt.Errorf("updater config: %w", err)
		}
	}
	if _, err := bootchain.ParseChain(c.Bootloader); err != nil {
		return fmt.Errorf("updater config: %w", err)
	}
	if c.Report != nil {
		if err := c.Report.Validate(); err != nil {
			return fmt.Errorf("updater config: %w", err)
		}
	}
	for _, id := range c.Revoked {
		if _, err := ParseKeyID(id); err != nil {
			return fmt.Errorf("updater config: revoked %q: %w", id, err)
		}
	}
	for _, h := range c.Health.HTTP {
		if _, err := url.Parse(h.URL); err != nil || h.URL == "" {
			return fmt.Errorf("updater config: health http url %q", h.URL)
		}
	}
	for _, cmd := range c.Health.Commands {
		if len(cmd) == 0 || cmd[0] == "" || cmd[0][0] != '/' {
			return fmt.Errorf("updater config: health command %q: the program must be an absolute path", cmd)
		}
	}
	return nil
}

// Marshal writes the configuration as the image carries it.
func (c Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

// ParseKeyID reads a minisign key ID as it prints them (16 hex digits).
func ParseKeyID(s string) (uint64, error) {
	if len(s) != 16 {
		return 0, errors.New("want a key ID of 16 hex digits")
	}
	return strconv.ParseUint(s, 16, 64)
}
