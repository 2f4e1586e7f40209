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
// image build compiles it and reports every forbidden prefix and every
// package outside the standard library that has cgo files. Those are
// listed with cgo enabled: with CGO_ENABLED=0, as the image build runs,
// go list files them under IgnoredGoFiles and a CgoFiles check could
// never fire.
func Check(t testing.TB, forbidden ...string) {
	t.Helper()
	list := func(cgo string) []string {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{.CgoFiles}}", ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOOS=linux", "GOARCH=arm64")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list (CGO_ENABLED=%s): %v", cgo, err) // never a skip: a guard that cannot run does not guard
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, line := range list("0") {
		pkg, _, _ := strings.Cut(line, " ")
		for _, bad := range forbidden {
			if strings.HasPrefix(pkg, bad) {
				t.Errorf("imports %s", pkg)
			}
		}
	}
	for _, line := range list("1") {
		f := strings.SplitN(line, " ", 3)
		if len(f) == 3 && f[1] == "false" && f[2] != "[]" {
			t.Errorf("%s uses cgo (%s)", f[0], f[2])
		}
	}
}
