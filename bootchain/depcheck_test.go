package bootchain

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsOnlyTheLayout keeps bootchain a floor both sides stand on:
// the builder, the init and the agent import it, so it imports nothing of
// pibake but disk/layout (and what that imports), and nothing outside
// the standard library.
func TestImportsOnlyTheLayout(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err) // a guard that cannot run does not guard
	}
	allowed := map[string]bool{
		"github.com/pibake/pibake/bootchain":   true,
		"github.com/pibake/pibake/disk/layout": true,
		"github.com/pibake/pibake/disk/mbr":    true, // layout's partition table
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, std, _ := strings.Cut(line, " ")
		if std != "true" && !allowed[pkg] {
			t.Errorf("bootchain depends on %s", pkg)
		}
	}
}
