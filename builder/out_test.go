package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/manifest"
)

// TestOutRefusesWhatPibakeDidNotWrite: --out never replaces a folder
// that holds anything but an earlier build's outputs, nor the current
// folder, the definition's folder or the project root (or a folder
// above them); an empty folder or an earlier build's is fine.
func TestOutRefusesWhatPibakeDidNotWrite(t *testing.T) {
	fx := newFixture(t)
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	repo := fx.repo(t)
	def := filepath.Join(repo, "images", "small.yaml")
	build := func(out string) error {
		_, err := Build(context.Background(), Options{Definition: def, OutDir: out, CacheDir: fx.cache, Source: src})
		return err
	}
	keep := func(files ...string) {
		t.Helper()
		for _, f := range files {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("%s is gone: %v", f, err)
			}
		}
	}

	user := filepath.Join(t.TempDir(), "notes")
	if err := os.MkdirAll(user, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(user, "todo.txt"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, out, want string }{
		{"definition's folder", filepath.Join(repo, "images"), "holds the image definition"},
		{"project root", repo, "holds the image definition"},
		{"above the project root", filepath.Dir(repo), "holds the image definition"},
		{"a folder of the user's", user, "todo.txt"},
	} {
		err := build(c.out)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "build small: load: ") {
			t.Errorf("--out %s (%s): %v, want a refusal naming %q", c.out, c.name, err, c.want)
		}
	}
	keep(def, filepath.Join(repo, "images", "small.lock"), filepath.Join(repo, "overlays", "base", "etc", "app", "config"), filepath.Join(user, "todo.txt"))

	// The current folder, even when it holds nothing.
	cwd := t.TempDir()
	t.Chdir(cwd)
	if err := build("."); err == nil || !strings.Contains(err.Error(), "the current folder") {
		t.Errorf("--out .: %v, want a refusal", err)
	}
	if err := build(filepath.Dir(cwd)); err == nil || !strings.Contains(err.Error(), "the current folder") {
		t.Errorf("--out ..: %v, want a refusal", err)
	}

	// An empty folder, then the same folder again (an earlier build's).
	empty := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := build(empty); err != nil {
			t.Fatalf("build %d into %s: %v", i+1, empty, err)
		}
	}
	// An earlier build's folder the user added a file to is theirs again.
	mine := filepath.Join(empty, "flash-notes.txt")
	if err := os.WriteFile(mine, []byte("card 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := build(empty); err == nil || !strings.Contains(err.Error(), "flash-notes.txt") {
		t.Errorf("rebuild over an output holding flash-notes.txt: %v, want a refusal naming it", err)
	}
	keep(mine, filepath.Join(empty, "small.img"))
}

// earlierOutput makes out an earlier build's output: small.img holding
// "previous", its manifest.json and SHA256SUMS.
func earlierOutput(t *testing.T, out string) {
	t.Helper()
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Format: manifest.Format, Image: "small", Disk: manifest.Disk{File: "small.img"}}
	data, err := manifest.Write(out, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "small.img"), []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "SHA256SUMS"), checksums(m, data), 0o644); err != nil {
		t.Fatal(err)
	}
}
