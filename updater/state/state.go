// Package state is the updater's memory on the data partition: per
// channel, the serial of the release it last committed; what each slot
// holds; the slot it treats as committed; a trial in progress; an install
// in progress; the releases that really failed (never retried) and the
// last result. It is saved atomically: a new file, synced, renamed over
// the old one, and the folder synced; a power cut leaves the old or the
// new state.
//
// The data partition is writable by more than the agent (a container with
// /data bind-mounted, anything that once ran as root), so the file is
// authenticated: an HMAC-SHA256 under a device key kept on bootsel (Keep),
// which only the agent mounts. A file that cannot be read (ErrCorrupt) or
// whose MAC fails (ErrUntrusted) is set aside and never acted on: the
// agent rebuilds its state from what it can verify (seal.go, keep.go).
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pibake/pibake/internal/atomicfile"
)

// Format is the version of the state file. Format 1 (one global
// last_serial) is read and converted.
const Format = 2

// AsFlashed is the version recorded for a slot the agent found holding
// the image it was flashed with (no channel release installed it); the
// image's own version is in its configuration.
const AsFlashed = "as flashed"

// Release identifies what a slot holds.
type Release struct {
	Image   string `json:"image"`
	Version string `json:"version"`
	Serial  uint64 `json:"serial"`
	Channel string `json:"channel,omitempty"`
}

// Trial is an installed, verified release waiting for its first boot and
// health checks. Armed is saved once the boot loader has been told to try
// the slot; Boots counts the times the trial slot came up and began its
// health checks (a power cut or crash during them starts it again).
type Trial struct {
	Slot    string    `json:"slot"`
	Release Release   `json:"release"`
	Since   time.Time `json:"since"`
	Armed   bool      `json:"armed,omitempty"`
	Boots   int       `json:"boots,omitempty"`
	// Signed is the channel document the release was installed from, as
	// signed: kept on bootsel when the trial commits.
	Signed *Signed `json:"signed,omitempty"`
}

// Signed is a channel document and its minisign signature, byte for byte
// as the repository served them.
type Signed struct {
	Document  []byte `json:"document"`
	Signature []byte `json:"signature"`
}

// Waiting is a release installed and verified in Slot, not armed yet.
// It says only what status shows and since when an inhibit holds it:
// the agent arms a slot only after verifying it again against the
// channel's current document (a release the channel no longer offers is
// never armed).
type Waiting struct {
	Release Release   `json:"release"`
	Slot    string    `json:"slot"`
	Since   time.Time `json:"since"`
	// Why the agent waits: outside the window, or inhibited by whom.
	Why string `json:"why"`
	// Next is the window's next opening, as of the last check.
	Next time.Time `json:"next,omitzero"`
	// Inhibited is when an inhibit first held back this release inside
	// its window (the start of the inhibit's maximum delay).
	Inhibited time.Time `json:"inhibited,omitzero"`
}

// Failure records why a release was given up.
type Failure struct {
	Version string `json:"version"`
	// Image and Serial name the release and the channel document the
	// trial came from (empty and 0 in a state written before they were
	// recorded): the device's report carries them, and the rollout watch
	// counts a failure only for the serial it judges.
	Image  string    `json:"image,omitempty"`
	Serial uint64    `json:"serial,omitempty"`
	Stage  string    `json:"stage"` // boot, health
	Check  string    `json:"check,omitempty"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Download is an install in progress, kept so that an agent restarted in
// the middle (a crash, a reboot, a power cut) resumes instead of starting
// over. Done lists the artifacts (by sha256) already written and verified;
// Offset is how far the artifact Current got, synced to the partition.
// Patched lists the artifacts whose patch this install tried (recorded
// before its first byte): a patch is not resumed, so an agent restarted
// in the middle of one (a watchdog kill, a power cut) goes on with chunks
// rather than the same patch from its first byte.
// Interrupted counts trials of this release that came up and were cut
// short (power, crash) before their health checks ended; Unbooted the
// trials the boot loader spent without the trial coming up.
type Download struct {
	Serial      uint64   `json:"serial"`
	Slot        string   `json:"slot"`
	Done        []string `json:"done,omitempty"`
	Current     string   `json:"current,omitempty"`
	Offset      int64    `json:"offset,omitempty"`
	Patched     []string `json:"patched,omitempty"`
	Interrupted int      `json:"interrupted,omitempty"`
	Unbooted    int      `json:"unbooted,omitempty"`
}

// Transfer is what an install moved: bytes downloaded, bytes reused from
// the running slot (delta updates), and the full artifacts' size. Bytes
// written before an agent restart are not counted again.
type Transfer struct {
	Version    string `json:"version"`
	Downloaded int64  `json:"downloaded"`
	Reused     int64  `json:"reused,omitempty"`
	Full       int64  `json:"full"`
	// Seconds is how long the run that finished the install took, from
	// the decision to install to the last artifact verified (an install
	// resumed after a reboot counts from the resume).
	Seconds float64 `json:"seconds,omitempty"`
	// PeakRSS is the agent's peak resident memory in bytes when the
	// install ended: its largest since the process started.
	PeakRSS int64 `json:"peak_rss,omitempty"`
}

// State is the whole file.
type State struct {
	Format int `json:"format"`
	// Serials: per channel, the serial of the release last committed.
	Serials map[string]uint64 `json:"serials,omitempty"`
	// Slots: what each slot holds, only while it holds a verified release
	// that was committed (or flashed); a slot being written has no entry.
	Slots map[string]Release `json:"slots,omitempty"`
	// Committed is the slot the device treats as its truth: where the
	// last commit went, or the slot it was flashed with.
	Committed string `json:"committed,omitempty"`
	// Degraded says why the device runs a fallback rather than its
	// committed release; it is cleared by the next commit.
	Degraded string    `json:"degraded,omitempty"`
	Trial    *Trial    `json:"trial,omitempty"`
	Download *Download `json:"download,omitempty"`
	// Waiting is a release written and verified in the other slot that
	// waits for the maintenance window (or an application's inhibit)
	// before the agent arms it and reboots.
	Waiting   *Waiting           `json:"waiting,omitempty"`
	Failed    map[string]Failure `json:"failed,omitempty"` // by version
	LastError string             `json:"last_error,omitempty"`
	LastCheck time.Time          `json:"last_check,omitzero"`
	// LastInstall is what the last install that reached its trial moved.
	LastInstall *Transfer `json:"last_install,omitempty"`

	// LastSerial is format 1's single serial, read for conversion only.
	LastSerial uint64 `json:"last_serial,omitempty"`

	// MAC authenticates the file (seal.go); Load checks and clears it.
	// Agents that predate it ignore the field.
	MAC string `json:"mac,omitempty"`
}

// ErrCorrupt means the state file could not be read; Load returns a fresh
// state with it and has set the file aside.
var ErrCorrupt = errors.New("updater state file is unreadable")

// ErrUntrusted means the state file, or its absence, fails the check of
// its device key: Load returns a fresh state with it and has set the
// file aside. The agent rebuilds its state from what it can verify.
var ErrUntrusted = errors.New("updater state file fails its authentication")

// ErrPowerCut is what the test stores return after the power is cut.
var ErrPowerCut = errors.New("power cut")

// Validate checks what a parser cannot: slot names, and formats.
func (st State) Validate() error {
	slot := func(s string) bool { return s == "a" || s == "b" }
	if st.Format != Format && st.Format != 1 {
		return fmt.Errorf("format %d, this agent reads %d", st.Format, Format)
	}
	if st.Committed != "" && !slot(st.Committed) {
		return fmt.Errorf("committed slot %q (want a or b)", st.Committed)
	}
	for s := range st.Slots {
		if !slot(s) {
			return fmt.Errorf("slot %q (want a or b)", s)
		}
	}
	if st.Trial != nil && !slot(st.Trial.Slot) {
		return fmt.Errorf("trial slot %q (want a or b)", st.Trial.Slot)
	}
	if st.Download != nil && !slot(st.Download.Slot) {
		return fmt.Errorf("download slot %q (want a or b)", st.Download.Slot)
	}
	if st.Waiting != nil && !slot(st.Waiting.Slot) {
		return fmt.Errorf("waiting slot %q (want a or b)", st.Waiting.Slot)
	}
	return nil
}

// Parse reads a state file. Format 1's global serial is kept in
// LastSerial for the agent to assign to its channel (Upgrade).
func Parse(data []byte) (State, error) {
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, err
	}
	if err := st.Validate(); err != nil {
		return State{}, err
	}
	return st, nil
}

// Upgrade converts a format 1 state: its one serial belonged to the
// channel the device follows.
func (st *State) Upgrade(channel string) {
	if st.LastSerial > 0 {
		if st.Serials == nil {
			st.Serials = map[string]uint64{}
		}
		st.Serials[channel] = max(st.Serials[channel], st.LastSerial)
		st.LastSerial = 0
	}
	st.Format = Format
}

// Store loads and saves the state.
type Store interface {
	Load() (State, error)
	Save(State) error
}

// File keeps the state in one JSON file, authenticated with the key in
// KeyPath (seal.go).
type File struct {
	Path string
	// KeyPath is the device key's file, where the data partition cannot
	// reach (Keep.KeyPath, on bootsel); "" reads and writes the state
	// without authentication (tests, tools that only display it).
	KeyPath string
}

// Load reads the state. A missing file is the empty state, unless the
// device has a key (then it was removed: ErrUntrusted). A file that
// cannot be parsed (empty, truncated, garbage, a newer format, unknown
// slot names) or, once the device has a key, whose MAC is missing or
// wrong, is renamed to Path.bad-N and Load returns the empty state with
// an error wrapping ErrCorrupt or ErrUntrusted that names the copy. While
// the device has no key yet (an agent that took over from one that
// predates keys) the file is read as it is: see Seal.
func (f File) Load() (State, error) {
	key, keyed, err := f.key()
	if err != nil {
		return State{}, err
	}
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		if keyed {
			return State{Format: Format}, fmt.Errorf("%w: %s is missing, but this device has kept its state before", ErrUntrusted, f.Path)
		}
		return State{Format: Format}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("updater state: %w", err)
	}
	st, perr := Parse(data)
	if perr != nil {
		return f.setAside(ErrCorrupt, perr)
	}
	if !keyed {
		st.MAC = ""
		return st, nil
	}
	if err := st.checkMAC(key); err != nil {
		return f.setAside(ErrUntrusted, err)
	}
	st.MAC = ""
	return st, nil
}

// setAside renames the state file to Path.bad-N and returns the empty
// state with an error wrapping kind.
func (f File) setAside(kind, why error) (State, error) {
	keep := f.Path + ".bad"
	for n := 1; ; n++ {
		if _, err := os.Lstat(fmt.Sprintf("%s-%d", keep, n)); errors.Is(err, os.ErrNotExist) {
			keep = fmt.Sprintf("%s-%d", keep, n)
			break
		}
	}
	if err := os.Rename(f.Path, keep); err != nil {
		return State{}, fmt.Errorf("updater state %s is unreadable (%v) and cannot be set aside: %w", f.Path, why, err)
	}
	return State{Format: Format}, fmt.Errorf("%w: %s (%v): kept as %s, starting afresh", kind, f.Path, why, keep)
}

// Save writes the state atomically, with its MAC once the device has a
// key.
func (f File) Save(st State) error {
	st.Format = Format
	st.MAC = ""
	key, err := f.saveKey()
	if err != nil {
		return err
	}
	if key != nil {
		st.MAC = st.mac(key)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return fmt.Errorf("updater state: %w", err)
	}
	if err := atomicfile.Write(f.Path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("updater state: %w", err)
	}
	return nil
}
