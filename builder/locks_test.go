package builder

import (
	"path/filepath"
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
