package debian

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadLock: a lock file as a user or a merge left it.
func FuzzReadLock(f *testing.F) {
	f.Add([]byte("format: 1\nsource_date_epoch: 1700000000\npackages:\n  - {name: base-files, version: \"13\", arch: arm64, sha256: 0000000000000000000000000000000000000000000000000000000000000000, size: 10, path: pool/b.deb, role: root}\n"))
	f.Add([]byte("source_date_epoch: 5\n"))
	f.Add([]byte("packages: [{name: x, path: ../../etc/passwd}]\n"))
	f.Add([]byte(":\n\t-"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "demo.lock")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, _, err := ReadLock(p)
		if err != nil {
			return
		}
		for _, pk := range l.Packages {
			if strings.Contains(pk.Path, "..") || pk.Name == "" {
				t.Fatalf("accepted path %q", pk.Path)
			}
		}
	})
}
