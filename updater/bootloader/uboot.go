package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/internal/atomicfile"
)

// StateFile is the state file's name on bootsel.
const StateFile = "pibake.env"

// UBoot keeps the state in Dir/pibake.env: Dir is where bootsel (FAT) is
// mounted on the device, or any folder in tests. Writes go to a new file
// that is synced and renamed over the old one, then the folder is synced.
type UBoot struct{ Dir string }

func (u UBoot) read() (State, error) {
	data, err := os.ReadFile(filepath.Join(u.Dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return ParseState(nil) // the script's defaults
	}
	if err != nil {
		return State{}, fmt.Errorf("boot state: %w", err)
	}
	return ParseState(data)
}

// BadSuffix is appended to a state file that could not be read when it is
// set aside for inspection.
const BadSuffix = ".bad"

// writeFile replaces dir/name atomically.
func writeFile(dir, name string, data []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, name), data, 0o644); err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	return nil
}

// update applies f to the state and writes it back, only if it changed
// (every write is a FAT directory update on the card). A file that cannot
// be parsed (torn by a power cut during U-Boot's own write, or garbage) is
// what the script also reads as its defaults: it is kept as
// pibake.env.bad and f starts from those defaults, so a bad file never
// stops the agent from marking the running slot good.
func (u UBoot) update(f func(State) State) error {
	path := filepath.Join(u.Dir, StateFile)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("boot state: %w", err)
	}
	st, perr := ParseState(old)
	if perr != nil {
		if err := writeFile(u.Dir, StateFile+BadSuffix, old); err != nil {
			return err
		}
		st, _ = ParseState(nil)
	}
	next := f(st).Marshal()
	if perr == nil && bytes.Equal(bytes.TrimRight(old, "\x00"), next) {
		return nil
	}
	return writeFile(u.Dir, StateFile, next)
}

// Primary implements Bootloader.
func (u UBoot) Primary() (Slot, error) {
	st, err := u.read()
	if err != nil {
		return "", err
	}
	return st.Primary(), nil
}

// State returns the current state (for status output).
func (u UBoot) State() (State, error) { return u.read() }

// TryOnce implements Bootloader.
func (u UBoot) TryOnce(s Slot) error { return u.update(func(st State) State { return st.tryOnce(s) }) }

// MarkGood implements Bootloader.
func (u UBoot) MarkGood(s Slot) error {
	return u.update(func(st State) State { return st.markGood(s) })
}

// MarkBad implements Bootloader.
func (u UBoot) MarkBad(s Slot) error { return u.update(func(st State) State { return st.markBad(s) }) }

// Tried implements Bootloader.
func (u UBoot) Tried(s Slot) (Evidence, error) {
	st, err := u.read()
	if err != nil {
		return Unknown, err
	}
	return st.tried(s), nil
}
