// Package hosttool finds the host programs that tests check pibake's
// output with (sfdisk, fsck.vfat, mtools, mkimage, ...). On a developer's
// machine a missing tool skips the test; where the real proofs are asked
// for (PIBAKE_REAL or PIBAKE_E2E set, or CI), a missing tool fails it:
// make test installs every one through scripts/deps.sh, so a missing one
// there is a broken setup, not a reason to pass.
package hosttool

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Strict reports whether missing tools fail tests.
func Strict() bool {
	for _, v := range []string{"PIBAKE_REAL", "PIBAKE_E2E", "CI"} {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}

// Find returns the path of tool, looked up in PATH, then /sbin and
// /usr/sbin (Debian keeps mkfs and fsck there, outside a user's PATH).
func Find(tool string) (string, bool) {
	if p, err := exec.LookPath(tool); err == nil {
		return p, true
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, tool)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, true
		}
	}
	return "", false
}

// Need returns the path of tool or, if it is missing, skips the test or
// (Strict) fails it, naming the Debian package if pkg is given.
func Need(t testing.TB, tool, pkg string) string {
	t.Helper()
	if p, ok := Find(tool); ok {
		return p
	}
	from := ""
	if pkg != "" {
		from = "Debian package " + pkg + "; "
	}
	msg := tool + " is not installed (" + from + "make test installs it via scripts/deps.sh)"
	if Strict() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
