package bootloader

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/internal/atomicfile"
)

// UBoot keeps the state in Dir/pibake.env: Dir is where bootsel (FAT) is
// mounted on the device, or any folder in tests. Writes go to a new file
// that is synced and renamed over the old one, then the folder is synced.
type UBoot struct{ Dir string }

// read returns the state the script would use: StateFile if it holds all
// of the state, else the agent's copy, else the defaults.
func (u UBoot) read() (bootchain.State, error) {
	st, _, err := u.readRaw()
	return st, err
}

// readRaw also returns StateFile's bytes and whether they were usable.
func (u UBoot) readRaw() (bootchain.State, []byte, error) {
	main, err := os.ReadFile(filepath.Join(u.Dir, bootchain.StateFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return bootchain.State{}, nil, fmt.Errorf("boot state: %w", err)
	}
	if st, ok := bootchain.ParseComplete(main); ok {
		return st, main, nil
	}
	backup, err := os.ReadFile(filepath.Join(u.Dir, bootchain.AgentStateFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return bootchain.State{}, nil, fmt.Errorf("boot state: %w", err)
	}
	if st, ok := bootchain.ParseComplete(backup); ok {
		return st, nil, nil
	}
	st, _ := bootchain.ParseState(nil)
	return st, nil, nil
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

// update applies f to the state and writes it back to the agent's copy
// and then to StateFile, each only if it changed (every write is a FAT
// directory update on the card). A StateFile that cannot be used (torn by
// a power cut during U-Boot's own write, or garbage) is kept as
// pibake.env.bad; f then starts from what the script reads instead (the
// agent's copy, or the defaults), so a bad file never stops the agent.
func (u UBoot) update(f func(bootchain.State) bootchain.State) error {
	path := filepath.Join(u.Dir, bootchain.StateFile)
	st, usable, err := u.readRaw()
	if err != nil {
		return err
	}
	if usable == nil {
		if old, err := os.ReadFile(path); err == nil {
			if err := writeFile(u.Dir, bootchain.StateFile+BadSuffix, old); err != nil {
				return err
			}
		}
	}
	next := f(st).Marshal()
	if backup, err := os.ReadFile(filepath.Join(u.Dir, bootchain.AgentStateFile)); err != nil || !bytes.Equal(backup, next) {
		if err := writeFile(u.Dir, bootchain.AgentStateFile, next); err != nil {
			return err
		}
	}
	if usable != nil && bytes.Equal(bytes.TrimRight(usable, "\x00"), next) {
		return nil
	}
	return writeFile(u.Dir, bootchain.StateFile, next)
}

// Primary implements Bootloader.
func (u UBoot) Primary() (bootchain.Slot, error) {
	st, err := u.read()
	if err != nil {
		return "", err
	}
	return st.Primary(), nil
}

// State returns the current state (for status output).
func (u UBoot) State() (bootchain.State, error) { return u.read() }

// TryOnce implements Bootloader.
func (u UBoot) TryOnce(s bootchain.Slot) error {
	return u.update(func(st bootchain.State) bootchain.State { return st.TryOnce(s) })
}

// MarkGood implements Bootloader.
func (u UBoot) MarkGood(s bootchain.Slot) error {
	return u.update(func(st bootchain.State) bootchain.State { return st.MarkGood(s) })
}

// MarkBad implements Bootloader.
func (u UBoot) MarkBad(s bootchain.Slot) error {
	return u.update(func(st bootchain.State) bootchain.State { return st.MarkBad(s) })
}

// Tried implements Bootloader.
func (u UBoot) Tried(s bootchain.Slot) (bootchain.Evidence, error) {
	st, err := u.read()
	if err != nil {
		return bootchain.Unknown, err
	}
	return st.Tried(s), nil
}
