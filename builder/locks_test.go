package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
)

// TestCommittedLocksMatch: every lock in the repository matches its
// definition's Debian inputs, network packages included, so a change to a
// definition (or to what the builder adds to it) that needs 'pibake lock'
// fails here in seconds, not after a build in make test.
func TestCommittedLocksMatch(t *testing.T) {
	defs, err := filepath.Glob("../images/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defs = append(defs, "testdata/small/images/small.yaml")
	n := 0
	for _, d := range defs {
		lockPath := LockPath(d)
		lock, _, err := debian.ReadLock(lockPath)
		if err != nil {
			continue // a definition without a lock (images/essensys-edge.yaml) is locked by its first build
		}
		def, err := imagedef.Load(d, imagedef.Options{})
		if err != nil {
			t.Errorf("%s: %v", d, err)
			continue
		}
		if err := lock.Check(Inputs(def), lockPath); err != nil {
			t.Errorf("%v", err)
		}
		n++
	}
	if n < 3 {
		t.Errorf("checked %d locks; want the demo's, demo-docker's and the small test image's", n)
	}
}

// TestArchives: the demo reads trixie with its updates and security
// archives (security on its own mirror), and its image's sources.list
// lists exactly those.
func TestArchives(t *testing.T) {
	def, err := imagedef.Load("../images/demo.yaml", imagedef.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := string(debian.SourcesList(Archives(def), def.Debian.Components))
	want := "deb http://deb.debian.org/debian trixie main non-free-firmware\n" +
		"deb http://deb.debian.org/debian trixie-updates main non-free-firmware\n" +
		"deb http://deb.debian.org/debian-security trixie-security main non-free-firmware\n"
	if got != want {
		t.Errorf("sources.list:\n%s\nwant:\n%s", got, want)
	}
	if in := Inputs(def); strings.Join(in.Archives, " ") != "trixie-updates trixie-security" {
		t.Errorf("inputs' archives %v", in.Archives)
	}
}

// TestOldLockInputs: a definition that reads the main suite alone has the
// inputs digest of the locks made before pibake read several archives
// (the small test image's, locked then), so those locks stay valid.
func TestOldLockInputs(t *testing.T) {
	data, err := os.ReadFile("testdata/small/images/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), "debian:\n", "debian:\n  updates: false\n  security: false\n", 1))
	def, err := imagedef.Parse("small.yaml", data, "testdata/small", "")
	if err != nil {
		t.Fatal(err)
	}
	const before = "sha256:3edcd899dde4fbf594d6187487c283ef9e1e2f985b48483730e9bdc4a61742b2" // small.lock's inputs before
	if got := Inputs(def).Digest(); got != before {
		t.Errorf("inputs %s, the old lock has %s", got, before)
	}
}
