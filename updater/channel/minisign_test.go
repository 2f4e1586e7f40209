package channel

import (
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
)

// needMinisign returns the minisign CLI, or skips: scripts/deps.sh
// installs it (Debian package minisign), so make test never skips.
func needMinisign(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("minisign")
	if err != nil {
		t.Skip("the minisign CLI is not installed (apt-get install minisign, or scripts/deps.sh): the key files are not checked against it")
	}
	return p
}

// signedDoc writes a channel document signed by priv into dir and
// returns its path (the signature is next to it, PATH.minisig).
func signedDoc(t *testing.T, dir string, priv minisign.PrivateKey) string {
	t.Helper()
	d, s, err := Sign(doc(1), priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stable.json")
	if err := os.WriteFile(path, d, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(SignaturePath(path), s, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeygenPublicKeyMinisign: the public key pibake writes is read by
// the minisign CLI, which verifies a document pibake signed with it.
func TestKeygenPublicKeyMinisign(t *testing.T) {
	bin := needMinisign(t)
	dir := t.TempDir()
	pubPath, keyPath, err := GenerateKeyFiles(dir, "fleet", "")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := LoadPrivateKey(keyPath, "")
	if err != nil {
		t.Fatal(err)
	}
	path := signedDoc(t, dir, priv)
	out, err := exec.Command(bin, "-Vm", path, "-p", pubPath).CombinedOutput()
	if err != nil {
		pub, _ := os.ReadFile(pubPath)
		t.Fatalf("minisign -Vm %s -p %s: %v\n%s\nthe key file:\n%s", path, pubPath, err, out, pub)
	}
	if !strings.Contains(string(out), "pibake channel=stable serial=1") {
		t.Errorf("minisign shows no trusted comment: %s", out)
	}
}

// TestMinisignKeySignsForPibake: a key pair the minisign CLI made signs
// a document pibake verifies (signed by the CLI, and by pibake with the
// CLI's secret key, which minisign then verifies).
func TestMinisignKeySignsForPibake(t *testing.T) {
	bin := needMinisign(t)
	dir := t.TempDir()
	pubPath, keyPath := filepath.Join(dir, "cli.pub"), filepath.Join(dir, "cli.key")
	if out, err := exec.Command(bin, "-G", "-W", "-p", pubPath, "-s", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign -G: %v\n%s", err, out)
	}
	pubText, _ := os.ReadFile(pubPath)
	pub, err := ParsePublicKey(string(pubText))
	if err != nil {
		t.Fatalf("pibake reads minisign's public key: %v", err)
	}
	// The document's bytes, as publish writes them (pibake's own
	// signature is thrown away: the CLI signs them).
	d, _, err := Sign(doc(1), mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "stable.json")
	os.WriteFile(path, d, 0o644)
	if out, err := exec.Command(bin, "-S", "-s", keyPath, "-m", path, "-t", "pibake channel=stable serial=1").CombinedOutput(); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	sig, _ := os.ReadFile(SignaturePath(path))
	if _, err := Verify(d, sig, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now}); err != nil {
		t.Errorf("pibake refuses the minisign CLI's signature: %v", err)
	}
	priv, err := LoadPrivateKey(keyPath, "")
	if err != nil {
		t.Fatalf("pibake reads minisign's secret key: %v", err)
	}
	path = signedDoc(t, t.TempDir(), priv)
	if out, err := exec.Command(bin, "-Vm", path, "-p", pubPath).CombinedOutput(); err != nil {
		t.Errorf("minisign refuses pibake's signature with its own key: %v\n%s", err, out)
	}
}

func mustKey(t *testing.T) minisign.PrivateKey {
	t.Helper()
	_, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// TestOlderPublicKeyFiles: key files pibake wrote before (a comment line
// of its own above minisign's) still read.
func TestOlderPublicKeyFiles(t *testing.T) {
	dir := t.TempDir()
	pubPath, _, err := GenerateKeyFiles(dir, "fleet", "")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(pubPath)
	want, err := ParsePublicKey(string(text))
	if err != nil {
		t.Fatal(err)
	}
	older := "untrusted comment: pibake public key fleet\n" + string(text)
	got, err := ParsePublicKey(older)
	if err != nil || got.ID() != want.ID() {
		t.Errorf("an older key file: %v (id %X, want %X)", err, got.ID(), want.ID())
	}
	if _, err := ParsePublicKey("untrusted comment: nothing\n"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a file without a key: %v", err)
	}
}

// TestEmptyKeyFiles: an empty key file is named as such.
func TestEmptyKeyFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.key")
	os.WriteFile(p, nil, 0o600)
	if _, err := LoadPrivateKey(p, ""); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty secret key: %v", err)
	}
	if _, err := ParsePublicKey("\n"); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty public key: %v", err)
	}
}
