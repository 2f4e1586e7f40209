package manifest_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestImportsNoBuilder: reading a build's manifest.json links neither the
// builder nor the container libraries it uses.
func TestImportsNoBuilder(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/google/go-containerregistry")
}

// TestStandardLibraryOnly: the contract imports nothing but the standard
// library, so any tool can read a manifest at no cost.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "github.com/pibake/pibake/manifest" {
			t.Errorf("imports %s", pkg)
		}
	}
}
