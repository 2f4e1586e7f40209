package archtest

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/pibake/pibake"

// Limits of any non-test Go file of the module.
const (
	maxFileLines = 500
	maxFuncLines = 100
	maxParams    = 6
)

// root is the module's folder, two levels above this package.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return dir
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// packages lists every package of the module with its imports and its
// whole dependency set, as the image build compiles them (no cgo).
func packages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err) // never a skip: a guard that cannot run does not guard
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, module+"/")] = p
	}
	return pkgs
}

func ours(deps []string) []string {
	var out []string
	for _, d := range deps {
		if rest, ok := strings.CutPrefix(d, module+"/"); ok {
			out = append(out, rest)
		}
	}
	return out
}

func under(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }

// hostContracts are the updater's packages that are formats the builder
// writes for the device: updater.yaml (updater/config) and the update
// repository with its channel names (updater/channel). Both import only the
// standard library, yaml, minisign and bootchain.
var hostContracts = map[string]bool{"updater/config": true, "updater/channel": true}

// TestFloors: the import rules of docs/architecture.md.
func TestFloors(t *testing.T) {
	pkgs := packages(t)
	for name, p := range pkgs {
		deps := ours(p.Deps)
		switch {
		case name == "bootchain":
			for _, d := range ours(p.Imports) {
				if d != "disk/layout" {
					t.Errorf("bootchain imports %s; it may import only disk/layout and the standard library", d)
				}
			}
		case name == "manifest":
			for _, d := range p.Deps {
				if strings.Contains(d, ".") && !strings.HasPrefix(d, module) && !strings.HasPrefix(d, "golang.org/x/") {
					t.Errorf("manifest links %s; the manifest's types must stay light", d)
				}
			}
		}
		for _, tool := range []string{"publish", "imager", "vm"} {
			if under(name, tool) {
				for _, d := range deps {
					if under(d, "builder") {
						t.Errorf("%s imports %s: it reads a build through manifest/, not the builder", name, d)
					}
				}
			}
		}
		if under(name, "firmware") || under(name, "bootinit") || under(name, "builder") {
			for _, d := range deps {
				if under(d, "updater") && !(under(name, "builder") && hostContracts[d]) {
					t.Errorf("%s imports %s: boot code shares contracts through bootchain, not the updater", name, d)
				}
			}
		}
	}
}

// sourceFiles calls f for every non-test Go file of the module.
func sourceFiles(t *testing.T, f func(rel string, fset *token.FileSet, file *ast.File)) {
	t.Helper()
	dir := root(t)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || strings.HasPrefix(n, ".") && p != dir || n == "out" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		file, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		f(filepath.ToSlash(rel), fset, file)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSizes: no file, function or parameter list over its limit.
func TestSizes(t *testing.T) {
	sourceFiles(t, func(rel string, fset *token.FileSet, file *ast.File) {
		if n := fset.File(file.Pos()).LineCount(); n > maxFileLines {
			t.Errorf("%s: %d lines (limit %d): split it by what its parts do", rel, n, maxFileLines)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			var typ *ast.FuncType
			var body *ast.BlockStmt
			name := "function literal"
			switch x := n.(type) {
			case *ast.FuncDecl:
				typ, body, name = x.Type, x.Body, x.Name.Name
			case *ast.FuncLit:
				typ, body = x.Type, x.Body
			default:
				return true
			}
			at := fset.Position(n.Pos())
			params := 0
			for _, f := range typ.Params.List {
				params += max(1, len(f.Names))
			}
			if params > maxParams {
				t.Errorf("%s:%d: %s takes %d parameters (limit %d)", rel, at.Line, name, params, maxParams)
			}
			if body != nil {
				if lines := fset.Position(body.End()).Line - at.Line + 1; lines > maxFuncLines {
					t.Errorf("%s:%d: %s is %d lines (limit %d)", rel, at.Line, name, lines, maxFuncLines)
				}
			}
			return true
		})
	})
}

// TestOneSpelling: the boot chain's kind and the update repository's
// paths are written in their own package only.
func TestOneSpelling(t *testing.T) {
	rules := []struct {
		match func(string) bool
		home  string
		what  string
	}{
		{func(s string) bool { return s == "tryboot" || s == "uboot" }, "bootchain/", "a boot chain kind"},
		{func(s string) bool { return strings.Contains(s, "blobs/sha256") || strings.HasPrefix(s, "channels/") }, "updater/channel/", "an update repository path"},
	}
	sourceFiles(t, func(rel string, fset *token.FileSet, file *ast.File) {
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, r := range rules {
				if r.match(s) && !strings.HasPrefix(rel, r.home) {
					t.Errorf("%s:%d: %q spells %s outside %s", rel, fset.Position(lit.Pos()).Line, s, r.what, r.home)
				}
			}
			return true
		})
	})
}
