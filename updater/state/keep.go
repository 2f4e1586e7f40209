package state

// Keep is the agent's folder on bootsel: out of the data partition's
// reach, and mounted by the agent alone (root only, umask 077). It holds
// the device key that authenticates the state file and, per channel, the
// signed document of the release the device last committed from it: the
// floor of that channel's serials, which a lost or rejected state file
// cannot lower, and the artifacts' sha256 that say what a slot holds.

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/internal/atomicfile"
)

// KeepDir is the agent's folder on bootsel.
const KeepDir = "pibake-agent"

// Keep keeps the agent's trust files in Dir (bootsel's KeepDir).
type Keep struct{ Dir string }

// KeyPath is the device key's file (File.KeyPath).
func (k Keep) KeyPath() string { return filepath.Join(k.Dir, "state.key") }

// committedPrefix and committedSuffix frame a channel's file name: the
// channel's name in hex, as FAT folds case and channel names are free.
const (
	committedPrefix = "committed-"
	committedSuffix = ".json"
)

func (k Keep) committedPath(channel string) string {
	return filepath.Join(k.Dir, committedPrefix+hex.EncodeToString([]byte(channel))+committedSuffix)
}

// SaveCommitted keeps s as the signed document of the release last
// committed from channel: one file (document and signature together),
// replaced atomically.
func (k Keep) SaveCommitted(channel string, s Signed) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return fmt.Errorf("keep the committed document: %w", err)
	}
	if err := atomicfile.Write(k.committedPath(channel), data, 0o600); err != nil {
		return fmt.Errorf("keep the committed document: %w", err)
	}
	return nil
}

// Committed returns the kept documents by channel. A file that does not
// read as one (torn) is left out: the caller verifies every document
// anyway.
func (k Keep) Committed() (map[string]Signed, error) {
	entries, err := os.ReadDir(k.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the kept documents: %w", err)
	}
	out := map[string]Signed{}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), committedPrefix)
		if !ok || !strings.HasSuffix(name, committedSuffix) {
			continue
		}
		channel, err := hex.DecodeString(strings.TrimSuffix(name, committedSuffix))
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(k.Dir, e.Name()))
		if err != nil {
			continue
		}
		var s Signed
		if json.Unmarshal(data, &s) == nil {
			out[string(channel)] = s
		}
	}
	return out, nil
}
