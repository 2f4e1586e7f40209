package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestAgentImportsNoBuilderCode keeps the device agent free of build-host
// code and cgo.
func TestAgentImportsNoBuilderCode(t *testing.T) {
	// As the image build compiles it: for the device, without cgo.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.CgoFiles}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, cgo, _ := strings.Cut(line, " ")
		for _, bad := range []string{"github.com/pibake/pibake/builder", "github.com/pibake/pibake/firmware", "github.com/pibake/pibake/publish", "github.com/pibake/pibake/vm", "go.podman.io/", "github.com/google/go-containerregistry"} {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("pibake-updater imports %s", pkg)
			}
		}
		if cgo != "[]" {
			t.Errorf("%s uses cgo", pkg)
		}
	}
}
