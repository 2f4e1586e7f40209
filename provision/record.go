package provision

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/internal/atomicfile"
)

// The record of what was applied (RecordPath) keeps one line per set of
// input files applied, "hmac-sha256:MARK  NAMES", so that the same files
// found again (the wipe failed, a copy came back) are only erased. A
// set's digest (digest: names, lengths and contents, secrets included)
// is never stored: a mark is the HMAC-SHA256 of it under a random key of
// this device (RecordKeyPath), so neither file lets anyone test a guess
// of a passphrase without the other, and both are root's alone (0600).
//
// A record of 7cca2ba and before holds the bare sha256 digests,
// world-readable; the first boot after an update rewrites it with the
// marks of the same digests (an HMAC of the digest needs only the digest),
// so a set applied before is still recognised.

// markPrefix starts a keyed line of the record.
const markPrefix = "hmac-sha256:"

// record is the record under a target root.
type record struct{ root string }

func (r record) path() string    { return filepath.Join(r.root, RecordPath) }
func (r record) keyPath() string { return filepath.Join(r.root, RecordKeyPath) }

// key reads the device's key, making one first if there is none.
func (r record) key() ([]byte, error) {
	k, err := os.ReadFile(r.keyPath())
	switch {
	case err == nil && len(k) == sha256.Size:
		return k, nil
	case err == nil:
		return nil, fmt.Errorf("%s: %d bytes, want %d", RecordKeyPath, len(k), sha256.Size)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	k = make([]byte, sha256.Size)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(r.keyPath()), 0o755); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(r.keyPath(), k, 0o600); err != nil {
		return nil, fmt.Errorf("keep the record's key: %w", err)
	}
	return k, nil
}

// mark is what the record keeps of a set of files whose digest is sum.
func mark(key []byte, sum string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(sum))
	return markPrefix + hex.EncodeToString(h.Sum(nil))
}

// markOf is the mark of sum under the device's key.
func (r record) markOf(sum string) (string, error) {
	k, err := r.key()
	if err != nil {
		return "", err
	}
	return mark(k, sum), nil
}

// has tells whether the record holds m.
func (r record) has(m string) bool {
	data, err := os.ReadFile(r.path())
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 0 && hmac.Equal([]byte(f[0]), []byte(m)) {
			return true
		}
	}
	return false
}

// add appends m, for the input files found.
func (r record) add(m string, found []string) error {
	if err := os.MkdirAll(filepath.Dir(r.path()), 0o755); err != nil {
		return err
	}
	old, err := os.ReadFile(r.path())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	line := m + "  " + strings.Join(found, ",") + "\n"
	return atomicfile.Write(r.path(), append(old, line...), 0o600)
}

// migrate rewrites a record of 7cca2ba and before: each bare digest
// becomes its mark, and the file becomes root's alone. A record already
// keyed and 0600 is left as it is.
func (r record) migrate() error {
	st, err := os.Stat(r.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	data, err := os.ReadFile(r.path())
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	var old bool
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], markPrefix) {
			old = true
		}
	}
	if !old && st.Mode().Perm() == 0o600 {
		return nil
	}
	var key []byte
	if old {
		if key, err = r.key(); err != nil {
			// Root's alone at least, until a key can be made.
			return errors.Join(err, os.Chmod(r.path(), 0o600))
		}
	}
	var out strings.Builder
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 0 && !strings.HasPrefix(f[0], markPrefix) {
			l = strings.Replace(l, f[0], mark(key, f[0]), 1)
		}
		out.WriteString(l)
	}
	return atomicfile.Write(r.path(), []byte(out.String()), 0o600)
}

// digest identifies a set of input files (names and contents). It holds
// their secrets: it is only ever stored as a mark.
func digest(files map[string][]byte) string {
	h := sha256.New()
	for _, name := range Inputs {
		if data, ok := files[name]; ok {
			fmt.Fprintf(h, "%s %d\n", name, len(data))
			h.Write(data)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
