package channel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"
)

// ErrKeyName means a key's name is not a plain file name.
var ErrKeyName = errors.New("a key name is a file name, without a path")

// GenerateKeyFiles writes a new minisign key pair as dir/name.key (mode
// 0600; encrypted when password is not empty) and dir/name.pub, in
// minisign's own form (one comment line, then the key), so the minisign
// CLI reads both. name is a file name: never a path out of dir. It never
// overwrites an existing key.
func GenerateKeyFiles(dir, name, password string) (pubPath, keyPath string, err error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", "", fmt.Errorf("keygen: --name %q: %w (and no leading dot): the files are NAME.key and NAME.pub in the output folder", name, ErrKeyName)
	}
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	var keyText []byte
	if password != "" {
		keyText, err = minisign.EncryptKey(password, priv)
	} else {
		keyText, err = priv.MarshalText()
	}
	if err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	pubText, err := pub.MarshalText()
	if err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	keyPath, pubPath = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("keygen: %s exists: move it away first (pibake never overwrites a key)", p)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	if err := os.WriteFile(keyPath, append(keyText, '\n'), 0o600); err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	// minisign's comment line names the key's ID; the key line follows.
	// (pibake wrote a comment line of its own above them before:
	// ParsePublicKey reads those files too.)
	if err := os.WriteFile(pubPath, append(pubText, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("keygen: %w", err)
	}
	return pubPath, keyPath, nil
}

// LoadPrivateKey reads a key written by GenerateKeyFiles (or the minisign
// tool); password decrypts an encrypted one.
func LoadPrivateKey(path, password string) (minisign.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("signing key: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return minisign.PrivateKey{}, fmt.Errorf("signing key %s is empty: not a key (pibake keygen writes NAME.key)", path)
	}
	if minisign.IsEncrypted(data) {
		if password == "" {
			return minisign.PrivateKey{}, fmt.Errorf("signing key %s is encrypted: give its password", path)
		}
		k, err := minisign.DecryptKey(password, data)
		if err != nil {
			return k, fmt.Errorf("signing key %s: %w", path, err)
		}
		return k, nil
	}
	var k minisign.PrivateKey
	if err := k.UnmarshalText(data); err != nil {
		return k, fmt.Errorf("signing key %s: %w", path, err)
	}
	return k, nil
}

// ParsePublicKey reads a public key in minisign's text form: a .pub file
// (its last line is the key, after minisign's comment line and, in files
// older pibake versions wrote, a comment line of pibake's), or the key
// line alone.
func ParsePublicKey(text string) (minisign.PublicKey, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var k minisign.PublicKey
	last := strings.TrimSpace(lines[len(lines)-1])
	if last == "" {
		return k, fmt.Errorf("public key: the text is empty, not a minisign public key (pibake keygen writes NAME.pub): %w", ErrUnknownKey)
	}
	if err := k.UnmarshalText([]byte(last)); err != nil {
		return k, fmt.Errorf("public key: not a minisign public key (%v): %w", err, ErrUnknownKey)
	}
	return k, nil
}
