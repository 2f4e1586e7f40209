// Package report is the wire format of what a device tells the team's MQTT
// broker about itself, and the topics it uses. The agent writes it
// (publisher side); `pibake fleet status` and `pibake rollout watch` read
// it (subscriber side). A report is not trusted: any device, or anything
// holding a device's credentials, can write anything under its own topic,
// so Parse bounds and checks every field and nothing in pibake acts on a
// report except to show it or to halt a rollout (the safe direction).
//
// Topics, under a prefix (default "pibake"):
//
//	PREFIX/devices/DEVICE/state   retained JSON State, on every change and as a heartbeat
//	PREFIX/devices/DEVICE/online  retained "1" while connected, "0" as the last will
//
// DEVICE is the device's MQTT user name, given by provisioning: the broker's
// ACL lets that user write only under its own DEVICE.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Format is the version of State; a reader refuses others.
const Format = 1

// DefaultPrefix is the topic prefix when the definition names none.
const DefaultPrefix = "pibake"

// MaxSize bounds a report on the wire; a larger message is refused unread.
const MaxSize = 16 << 10

// Results of the last update a device attempted.
const (
	ResultInProgress = "in-progress" // downloading, installing, waiting for its window, or in its trial
	ResultCommitted  = "committed"   // the trial passed its health checks
	ResultRolledBack = "rolled-back" // the trial failed (boot or health); the device is on its old slot
	ResultFailed     = "failed"      // the install failed before any trial (verification, download, disk)
)

// State is one device's report.
type State struct {
	Format    int       `json:"format"`
	Device    string    `json:"device"`
	Channel   string    `json:"channel"`
	Board     string    `json:"board"`
	Image     string    `json:"image"`
	Version   string    `json:"version"` // the release running now
	Serial    uint64    `json:"serial"`
	Slot      string    `json:"slot"`
	BootCount int       `json:"boot_count"`
	Agent     string    `json:"agent"` // the agent's own version
	Time      time.Time `json:"time"`  // the device's clock when it wrote the report
	Last      *Attempt  `json:"last,omitempty"`
	// Heartbeat is how often the device sends its state when nothing
	// changes, in seconds (0: unknown): a reader takes a device whose
	// report is older than a few of them as offline.
	Heartbeat int64 `json:"heartbeat_seconds,omitempty"`
	// Degraded says why the device runs a fallback rather than its
	// committed release; Error is the agent's last error (a poll that
	// failed, a release refused), both empty when all is well.
	Degraded string `json:"degraded,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Attempt is the last update the device tried and how it ended.
type Attempt struct {
	Image           string    `json:"image"`
	Version         string    `json:"version"`
	Serial          uint64    `json:"serial"`
	Result          string    `json:"result"`          // one of the Result constants
	Check           string    `json:"check,omitempty"` // the failing health check or stage
	Reason          string    `json:"reason,omitempty"`
	BytesDownloaded int64     `json:"bytes_downloaded"`
	BytesReused     int64     `json:"bytes_reused"`
	InstallSeconds  float64   `json:"install_seconds"`
	Time            time.Time `json:"time"`
}

var (
	reName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	reSlot   = regexp.MustCompile(`^[a-z]{1,8}$`)
	errTopic = errors.New("not a pibake device topic")
)

// ErrMalformed marks a report that is not a valid State.
var ErrMalformed = errors.New("malformed device report")

// CheckDevice says whether name can be a device's topic level (and MQTT
// user name): letters, digits, '.', '_', '-', at most 63, no wildcards.
func CheckDevice(name string) error {
	if !reName.MatchString(name) {
		return fmt.Errorf("device name %q: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// StateTopic is where device writes its State.
func StateTopic(prefix, device string) string { return prefix + "/devices/" + device + "/state" }

// OnlineTopic is where device writes "1" when it connects and its last will "0".
func OnlineTopic(prefix, device string) string { return prefix + "/devices/" + device + "/online" }

// Subscription is the filter that receives every device's topics.
func Subscription(prefix string) string { return prefix + "/devices/+/+" }

// SplitTopic returns the device and the kind ("state" or "online") of a
// topic under prefix.
func SplitTopic(prefix, topic string) (device, kind string, err error) {
	rest, ok := strings.CutPrefix(topic, prefix+"/devices/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 2 || CheckDevice(parts[0]) != nil || (parts[1] != "state" && parts[1] != "online") {
		return "", "", fmt.Errorf("%w: %q", errTopic, topic)
	}
	return parts[0], parts[1], nil
}

// Parse reads a State written under device's topic and checks it: the
// format, the sizes, the names, and that it names the device whose topic
// carried it (a device cannot report for another).
func Parse(device string, b []byte) (State, error) {
	var s State
	if len(b) > MaxSize {
		return s, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxSize)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return s, s.Validate(device)
}

// Validate checks the fields of a report carried on device's topic.
func (s *State) Validate(device string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w from %s: %s", ErrMalformed, device, fmt.Sprintf(format, a...))
	}
	switch {
	case s.Format != Format:
		return bad("format %d, this reader knows %d", s.Format, Format)
	case s.Device != device:
		return bad("it names device %q", s.Device)
	case !short(s.Channel, s.Board, s.Image, s.Version, s.Agent):
		return bad("a name is longer than 128 bytes")
	case s.Slot != "" && !reSlot.MatchString(s.Slot):
		return bad("slot %q", s.Slot)
	case s.BootCount < 0:
		return bad("boot count %d", s.BootCount)
	case s.Heartbeat < 0 || len(s.Degraded) > 1024 || len(s.Error) > 1024:
		return bad("heartbeat, degraded or error out of bounds")
	}
	if a := s.Last; a != nil {
		switch a.Result {
		case ResultInProgress, ResultCommitted, ResultRolledBack, ResultFailed:
		default:
			return bad("last result %q", a.Result)
		}
		if !short(a.Image, a.Version, a.Check) || len(a.Reason) > 1024 || a.BytesDownloaded < 0 || a.BytesReused < 0 || a.InstallSeconds < 0 {
			return bad("last attempt out of bounds")
		}
	}
	return nil
}

func short(ss ...string) bool {
	for _, s := range ss {
		if len(s) > 128 {
			return false
		}
	}
	return true
}
