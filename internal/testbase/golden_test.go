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
		{"no packages", nil, "545c0bfad1ac7dfba4aef541cbae1c0d4d4418945cbfef5980fb18471299ed29"},
		{"runtimes", []Package{{"base-files", "13.8", "arm64"}, {"podman", "5.4.2", "arm64"}, {"docker.io", "26.1", "arm64"}, {"docker-cli", "26.1", "arm64"}}, "687e76f9bff1b5d4548c6f0dfb37bb15512ac04edd619e9900ea8b808ebf229c"},
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
