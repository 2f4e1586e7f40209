package provision

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestSayOnlyHere keeps say.go the one place a refusal's words are made:
// elsewhere in the package (non-test files) a msg or a field is made from
// a string literal only, never converted from a variable (a key or a value
// of the input would get into a message that way), and no yamlerr.Error
// is built but by fail.
func TestSayOnlyHere(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "say.go" {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && (id.Name == "msg" || id.Name == "field") && len(n.Args) == 1 {
					if lit, ok := n.Args[0].(*ast.BasicLit); !ok || lit.Kind != token.STRING {
						t.Errorf("%s: %s(...) of something other than a string literal: only say.go may", fset.Position(n.Pos()), id.Name)
					}
				}
			case *ast.CompositeLit:
				if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "yamlerr" {
						t.Errorf("%s: a yamlerr.Error built outside fail (say.go)", fset.Position(n.Pos()))
					}
				}
			}
			return true
		})
	}
}
