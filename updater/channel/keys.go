package channel

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"
)

// GenerateKeyFiles writes a new minisign key pair as dir/name.key (mode
// 0600; encrypted when password is not empty) and dir/name.pub. It never
// overwrites an existing key.
func GenerateKeyFiles(dir, name, password string) (pubPath, keyPath string, err error) {
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
	if err := os.WriteFile(pubPath, append([]byte(fmt.Sprintf("untrusted comment: pibake public key %s\n", name)), append(pubText, '\n')...), 0o644); err != nil {
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

// ParsePublicKey reads a public key in minisign's text form (the second
// line of a .pub file, or the whole file).
func ParsePublicKey(text string) (minisign.PublicKey, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	var k minisign.PublicKey
	if err := k.UnmarshalText([]byte(strings.TrimSpace(lines[len(lines)-1]))); err != nil {
		return k, fmt.Errorf("public key: %w", errors.Join(ErrUnknownKey, err))
	}
	return k, nil
}
