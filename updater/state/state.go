// Package state is the updater's memory on the data partition: which
// channel serial it accepted last, what each slot holds, a trial in
// progress, the releases that failed (never retried) and the last result.
// It is saved atomically: a new file, synced, renamed over the old one,
// and the folder synced; a power cut leaves the old or the new state.
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

// Format is the version of the state file.
const Format = 1

// Release identifies what a slot holds.
type Release struct {
	Image   string `json:"image"`
	Version string `json:"version"`
	Serial  uint64 `json:"serial"`
}

// Trial is an installed release waiting for its first boot and health checks.
type Trial struct {
	Slot    string    `json:"slot"`
	Release Release   `json:"release"`
	Since   time.Time `json:"since"`
}

// Failure records why a release was given up.
type Failure struct {
	Version string    `json:"version"`
	Stage   string    `json:"stage"` // download, verify, write, boot, health
	Check   string    `json:"check,omitempty"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

// Download is an install in progress, kept so that an agent restarted in
// the middle (a crash, a reboot, a power cut) resumes instead of starting
// over. Done lists the artifacts (by sha256) already written and verified;
// Offset is how far the artifact Current got, synced to the partition.
type Download struct {
	Serial  uint64   `json:"serial"`
	Slot    string   `json:"slot"`
	Done    []string `json:"done,omitempty"`
	Current string   `json:"current,omitempty"`
	Offset  int64    `json:"offset,omitempty"`
}

// State is the whole file.
type State struct {
	Format     int                `json:"format"`
	LastSerial uint64             `json:"last_serial"`
	Slots      map[string]Release `json:"slots,omitempty"`
	Trial      *Trial             `json:"trial,omitempty"`
	Download   *Download          `json:"download,omitempty"`
	Failed     map[string]Failure `json:"failed,omitempty"` // by version
	LastError  string             `json:"last_error,omitempty"`
	LastCheck  time.Time          `json:"last_check,omitzero"`
}

// Store loads and saves the state.
type Store interface {
	Load() (State, error)
	Save(State) error
}

// File keeps the state in one JSON file.
type File struct{ Path string }

// Load reads the state; a missing file is the empty state.
func (f File) Load() (State, error) {
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Format: Format}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("updater state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("updater state %s is corrupt (%v): move it away to start over", f.Path, err)
	}
	if st.Format != Format {
		return State{}, fmt.Errorf("updater state %s has format %d, this agent reads %d", f.Path, st.Format, Format)
	}
	return st, nil
}

// Save writes the state atomically.
func (f File) Save(st State) error {
	st.Format = Format
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

// Memory is a Store for tests that can cut the power: Save number
// FailAfter and later fail without saving.
type Memory struct {
	St               State
	Saves, FailAfter int
}

// ErrPowerCut is what Memory returns after the cut.
var ErrPowerCut = errors.New("power cut")

// Load implements Store.
func (m *Memory) Load() (State, error) {
	if m.St.Format == 0 {
		m.St.Format = Format
	}
	return clone(m.St), nil
}

// Save implements Store.
func (m *Memory) Save(st State) error {
	m.Saves++
	if m.FailAfter > 0 && m.Saves >= m.FailAfter {
		return ErrPowerCut
	}
	m.St = clone(st)
	return nil
}

func clone(st State) State {
	data, _ := json.Marshal(st)
	var c State
	_ = json.Unmarshal(data, &c)
	return c
}
