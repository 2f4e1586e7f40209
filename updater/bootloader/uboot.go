package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// writeFile replaces dir/name: a new file, synced, renamed over the old
// one, then the folder synced (FAT included: the rename is one directory
// entry write).
func writeFile(dir, name string, data []byte) error {
	path := filepath.Join(dir, name)
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("boot state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("boot state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("boot state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("boot state: sync %s: %w", dir, err)
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
