package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeygenRefusesEmptyPassword: an empty password file (or one of a
// newline only) would write an unencrypted key without a word.
func TestKeygenRefusesEmptyPassword(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "newline": "\n"} {
		pw := filepath.Join(dir, name+".txt")
		os.WriteFile(pw, []byte(content), 0o600)
		out := filepath.Join(dir, "keys-"+name)
		_, _, err := runCmd("keygen", "--out", out, "--name", "fleet", "--password-file", pw)
		if err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s password file: %v", name, err)
		}
		if _, serr := os.Stat(filepath.Join(out, "fleet.key")); serr == nil {
			t.Errorf("%s password file: a key was written", name)
		}
	}
}

// TestKeygenNameStaysInOut: --name is a file name in --out, never a path.
func TestKeygenNameStaysInOut(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "keys")
	for _, name := range []string{"../x", "a/b", "..", ".", "", "x/../../y"} {
		_, _, err := runCmd("keygen", "--out", out, "--name", name)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("--name %q: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.key")); err == nil {
		t.Error("keygen --name ../x wrote outside --out")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "keys" {
			t.Errorf("keygen wrote %s outside --out", e.Name())
		}
	}
}

// TestKeygenPublicKeyFile: the public key file is minisign's own form,
// one comment line and the key.
func TestKeygenPublicKeyFile(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd("keygen", "--out", dir, "--name", "fleet"); err != nil {
		t.Fatal(err)
	}
	text, _ := os.ReadFile(filepath.Join(dir, "fleet.pub"))
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "untrusted comment: ") {
		t.Errorf("fleet.pub has %d lines, want a comment and the key:\n%s", len(lines), text)
	}
}
