// Package depcheck fails a test when a device program (built for arm64
// without cgo) depends on packages it must not: build-host code, container
// libraries, or anything using cgo.
package depcheck

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Check lists the dependencies of the package in the current folder as the
// image build compiles it and reports every forbidden prefix and cgo user.
func Check(t *testing.T, forbidden ...string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.CgoFiles}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, cgo, _ := strings.Cut(line, " ")
		for _, bad := range forbidden {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("imports %s", pkg)
			}
		}
		if cgo != "[]" {
			t.Errorf("%s uses cgo", pkg)
		}
	}
}
