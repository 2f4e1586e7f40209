// Package lock keeps the device's updater writers one at a time: the
// service (settling a boot, installing from the channel) and the
// commands that write slots or boot state (install, mark-good, rollback)
// take the same lock, an flock on a file under /run, so one cannot write
// a slot after the other verified it.
package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Path is the lock file on the device.
const Path = "/run/pibake-updater.lock"

// ErrBusy means another writer holds the lock.
var ErrBusy = errors.New("another pibake-updater is writing")

// Lock is a held lock; Unlock releases it.
type Lock struct{ f *os.File }

// Take takes the lock at path. With wait it blocks until the holder is
// done; without, it fails at once with ErrBusy, naming the holder's pid.
func Take(path string, wait bool) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("updater lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("updater lock %s: %w", path, err)
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (pid %s holds %s): try again when it is done", ErrBusy, strings.TrimSpace(string(holder)), path)
		}
		return nil, fmt.Errorf("updater lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &Lock{f}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error { return l.f.Close() }
