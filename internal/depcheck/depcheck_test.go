package depcheck

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder keeps what Check reports instead of failing this test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
}
func (r *recorder) Fatalf(format string, a ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, a...))
	panic(r)
}

// TestCgoIsCaught: a program with a cgo file is reported, although the
// image build's CGO_ENABLED=0 would leave that file out.
func TestCgoIsCaught(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module probe\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "c.go"), []byte("package main\n\n// int one(void) { return 1; }\nimport \"C\"\n"), 0o644)
	t.Chdir(dir)
	r := &recorder{TB: t}
	func() {
		defer func() { _ = recover() }()
		Check(r, "github.com/pibake/pibake/builder")
	}()
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "probe uses cgo") {
		t.Errorf("reports %q, want the cgo file", r.errs)
	}
}
