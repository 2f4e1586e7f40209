package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckReplace(t *testing.T) {
	dir := t.TempDir()
	ours := func(f *os.File) bool {
		b, _ := io.ReadAll(f)
		return strings.HasPrefix(string(b), "ours")
	}
	mine, theirs := filepath.Join(dir, "mine"), filepath.Join(dir, "theirs")
	os.WriteFile(mine, []byte("ours, from before"), 0o644)
	os.WriteFile(theirs, []byte("the user's"), 0o644)
	for _, c := range []struct {
		path, err string
	}{
		{filepath.Join(dir, "new"), ""},
		{mine, ""},
		{theirs, "is not a thing of ours: it is left as it is"},
		{dir, "is not a file"},
	} {
		err := CheckReplace(c.path, "a thing of ours", ours)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", c.path, err, c.err)
		}
	}
}
