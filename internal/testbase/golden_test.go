package testbase

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteGolden pins the exact bytes of the base tar, with and without
// the packages that bring extra programs.
func TestWriteGolden(t *testing.T) {
	for _, c := range []struct {
		name string
		pkgs []Package
		want string
	}{
		{"no packages", nil, "10e3056211e8f54ad961ed02ede8cb3b208d051c814cbfbc48d3b9e13dc75064"},
		{"runtimes", []Package{{"base-files", "13.8", "arm64"}, {"podman", "5.4.2", "arm64"}, {"docker.io", "26.1", "arm64"}, {"docker-cli", "26.1", "arm64"}}, "cb2665478cac865bb868e714f79d4cc5197f3220453f8370939807db74696833"},
	} {
		path := filepath.Join(t.TempDir(), "base.tar")
		if err := Write(path, c.pkgs); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != c.want {
			t.Errorf("%s: base tar of %d bytes has sha256 %s, want %s", c.name, len(data), got, c.want)
		}
	}
}
