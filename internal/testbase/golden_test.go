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
		{"no packages", nil, "6ab8ec73932faa757bdd3497cb715e1ee581e0c3912efd622ba9f176c220aeed"},
		{"runtimes", []Package{{"base-files", "13.8", "arm64"}, {"podman", "5.4.2", "arm64"}, {"docker.io", "26.1", "arm64"}, {"docker-cli", "26.1", "arm64"}}, "319a29a573dce4ed495eba04a6c75fab5e6422666aa88acba58677c724d2002e"},
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
