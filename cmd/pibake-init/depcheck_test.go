package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDeviceCodeImportsNoBuilder keeps the initramfs init small and free
// of build-host code: it runs on the device as PID 1.
func TestDeviceCodeImportsNoBuilder(t *testing.T) {
	// As the image build compiles it: for the device, without cgo.
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.CgoFiles}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, cgo, _ := strings.Cut(line, " ")
		if strings.HasPrefix(pkg, "github.com/pibake/pibake/builder") || strings.HasPrefix(pkg, "github.com/pibake/pibake/firmware") || pkg == "github.com/pibake/pibake/vm" {
			t.Errorf("pibake-init imports %s", pkg)
		}
		if cgo != "[]" && strings.HasPrefix(pkg, "github.com/pibake/") {
			t.Errorf("%s uses cgo", pkg)
		}
	}
}
