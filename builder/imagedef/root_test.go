package imagedef

import (
	"os"
	"path/filepath"
	"testing"
)

// TestProjectRoot: the nearest folder with overlays/ or services/, not
// above a git repository's top, else the definition's own folder.
func TestProjectRoot(t *testing.T) {
	top := t.TempDir()
	mk := func(p string) string {
		full := filepath.Join(top, p)
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		return full
	}
	mk("repo/overlays/base")
	mk("repo/images/more")
	mk("repo/.git")
	mk("repo/sub/.git")
	mk("flat/services")
	mk("bare")
	for _, c := range []struct{ dir, want string }{
		{"repo/images", "repo"},
		{"repo/images/more", "repo"},
		{"repo", "repo"},
		{"repo/sub", "repo/sub"}, // a repository of its own: not above its top
		{"flat", "flat"},
		{"bare", "bare"},
	} {
		if got := ProjectRoot(filepath.Join(top, c.dir)); got != filepath.Join(top, c.want) {
			t.Errorf("ProjectRoot(%s) = %s, want %s", c.dir, got, filepath.Join(top, c.want))
		}
	}
}
