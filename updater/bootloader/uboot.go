package bootloader

import (
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

func (u UBoot) write(st State) error { return writeFile(u.Dir, StateFile, st.Marshal()) }

// writeFile replaces dir/name atomically.
func writeFile(dir, name string, data []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, name), data, 0o644); err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	return nil
}

func (u UBoot) update(f func(State) State) error {
	st, err := u.read()
	if err != nil {
		return err
	}
	return u.write(f(st))
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
