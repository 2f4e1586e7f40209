package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlashNamesImage: flash says what it writes before it writes, and
// refuses the build's other files before the target exists.
func TestFlashNamesImage(t *testing.T) {
	dir := t.TempDir()
	_, zst := smallImage(t, dir)
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte("{}\n"), 0o644)
	for _, bad := range []string{filepath.Join(dir, "manifest.json"), dir} {
		card := filepath.Join(t.TempDir(), "card")
		if _, _, err := runCmd("flash", bad, card); err == nil || exitCode(err) != 1 {
			t.Errorf("flash %s: %v", bad, err)
		}
		if _, err := os.Stat(card); err == nil {
			t.Errorf("flash %s created the target", bad)
		}
	}
	card := filepath.Join(t.TempDir(), "card")
	out, _, err := runCmd("flash", zst, card)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "writing "+zst) || !strings.Contains(lines[0], "t 1.2.3, board pi4, environment prod") {
		t.Errorf("flash said:\n%s", out)
	}
}
