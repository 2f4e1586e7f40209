package state

// The state file's authentication. The device key is 32 random bytes the
// agent makes on bootsel (Keep.KeyPath), which only the agent mounts: a
// container or a process that can write /data can neither read it nor
// replace it. The MAC is an HMAC-SHA256 under that key of the state's
// JSON form without its mac field (encoding/json writes fields in
// declaration order and map keys sorted, so the form is canonical).
//
// The key is made by Seal, which the agent calls once it runs as the
// committed slot: until then (an agent that took over from one that
// predates keys, whose trial is not committed yet) the state is read and
// written as older agents do, so that a trial that fails and falls back
// to the older agent leaves it a state it reads and writes. Once the key
// exists, an older agent that runs again (a fallback) writes states
// without a MAC, which the next agent sets aside and rebuilds from what
// it can verify.

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/internal/atomicfile"
)

// keySize is the device key's length in bytes.
const keySize = 32

// macDomain binds a MAC to this file and format.
const macDomain = "pibake updater state v1\n"

// mac is the state's MAC under key.
func (st State) mac(key []byte) string {
	st.MAC = ""
	data, err := json.Marshal(st)
	if err != nil {
		return "" // a State always marshals; an empty MAC never matches
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(macDomain))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// checkMAC reports whether the state carries its MAC under key.
func (st State) checkMAC(key []byte) error {
	switch {
	case key == nil:
		return errors.New("the device key on bootsel is damaged")
	case st.MAC == "":
		return errors.New("no MAC (written by an agent without the device key, or by someone else)")
	case !hmac.Equal([]byte(st.MAC), []byte(st.mac(key))):
		return errors.New("its MAC does not match (written by someone else than this device's agent)")
	}
	return nil
}

// key reads the device key. keyed is false when the device has none yet
// (or File has no KeyPath); a key file that cannot be read as a key
// (torn by a power cut) is keyed with a nil key, which authenticates
// nothing.
func (f File) key() (key []byte, keyed bool, err error) {
	if f.KeyPath == "" {
		return nil, false, nil
	}
	data, err := os.ReadFile(f.KeyPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("updater state key: %w", err)
	}
	key, err = hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) != keySize {
		return nil, true, nil
	}
	return key, true, nil
}

// saveKey is the key Save writes the MAC with: none while the device has
// no key, a new one in place of a damaged one.
func (f File) saveKey() ([]byte, error) {
	key, keyed, err := f.key()
	if err != nil || !keyed || key != nil {
		return key, err
	}
	return f.newKey()
}

// Seal makes the device key if the device has none (or a damaged one):
// from the next Save on, the state is authenticated and a state without
// its MAC is never trusted again. made says it made one now (the file on
// disk has no MAC until the next Save). The agent calls it when it runs
// as the committed slot.
func (f File) Seal() (made bool, err error) {
	if f.KeyPath == "" {
		return false, nil
	}
	key, _, err := f.key()
	if err != nil || key != nil {
		return false, err
	}
	if _, err := f.newKey(); err != nil {
		return false, err
	}
	return true, nil
}

func (f File) newKey() ([]byte, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("updater state key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(f.KeyPath), 0o700); err != nil {
		return nil, fmt.Errorf("updater state key: %w", err)
	}
	if err := atomicfile.Write(f.KeyPath, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("updater state key: %w", err)
	}
	return key, nil
}

// Check parses a state file's bytes and checks its MAC under the device
// key's file content, as Load would, without setting anything aside: for
// readers (pibake-updater status) that must not trust or show a state the
// agent would refuse. keyFile nil means the device has no key yet: the
// state is returned as it is, unauthenticated (authenticated false).
func Check(data, keyFile []byte) (st State, authenticated bool, err error) {
	st, err = Parse(data)
	if err != nil {
		return State{}, false, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if keyFile == nil {
		st.MAC = ""
		return st, false, nil
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(keyFile)))
	if err != nil || len(key) != keySize {
		key = nil
	}
	if err := st.checkMAC(key); err != nil {
		return State{}, false, fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	st.MAC = ""
	return st, true, nil
}
