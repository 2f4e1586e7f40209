package docscheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// step is one command of a page and what it must print.
type step struct {
	line int // of the command in the page
	cmd  string
	want []string
	exit int
}

const fence = "```sh docs-check"

// steps reads the checked blocks of a page.
func steps(page []byte) ([]step, error) {
	var out []step
	in, heredoc := false, ""
	sc := bufio.NewScanner(bytes.NewReader(page))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimRight(sc.Text(), " \t")
		switch {
		case !in:
			in = l == fence
		case heredoc != "":
			s := &out[len(out)-1]
			s.cmd += "\n" + l
			if l == heredoc {
				heredoc = ""
			}
		case l == "```":
			in = false
		case strings.HasPrefix(l, "$ "):
			s := step{line: n, cmd: strings.TrimPrefix(l, "$ ")}
			if i := strings.Index(s.cmd, "<<'"); i >= 0 {
				heredoc, _, _ = strings.Cut(s.cmd[i+3:], "'")
			}
			out = append(out, s)
		case len(out) == 0:
			return nil, fmt.Errorf("line %d: output before the first \"$ \" command", n)
		default:
			s := &out[len(out)-1]
			if v, ok := strings.CutPrefix(l, "[exit "); ok && strings.HasSuffix(v, "]") {
				code, err := strconv.Atoi(strings.TrimSuffix(v, "]"))
				if err != nil {
					return nil, fmt.Errorf("line %d: %q: want [exit N]", n, l)
				}
				s.exit = code
				continue
			}
			s.want = append(s.want, l)
		}
	}
	if in {
		return nil, errors.New("a docs-check block is not closed")
	}
	return out, sc.Err()
}

// match says whether got matches want, "..." standing for any lines.
func match(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if match(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && got[0] == want[0] && match(want[1:], got[1:])
}

func TestSteps(t *testing.T) {
	page := "text\n```sh\n$ not run\n```\n" + fence + "\n$ pibake x\nout 1\n...\n[exit 2]\n$ cat > f <<'EOF'\na: 1\nEOF\n```\n"
	got, err := steps([]byte(page))
	if err != nil || len(got) != 2 || got[0].cmd != "pibake x" || got[0].exit != 2 || len(got[0].want) != 2 || got[1].cmd != "cat > f <<'EOF'\na: 1\nEOF" || got[1].line != 10 {
		t.Fatalf("%v %+v", err, got)
	}
	if !match([]string{"a", "...", "d"}, []string{"a", "b", "c", "d"}) || match([]string{"a"}, []string{"a", "b"}) || !match([]string{"..."}, nil) {
		t.Error("match")
	}
}

// TestDocs runs every checked block of README.md and docs/*.md.
func TestDocs(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	pages = append([]string{filepath.Join(root, "README.md")}, pages...)
	bin := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	build := exec.Command(gobin, "build", "-o", filepath.Join(bin, "pibake"), "./cmd/pibake")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	total := 0
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, page)
		ss, err := steps(data)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if len(ss) == 0 {
			continue
		}
		total += len(ss)
		dir := t.TempDir()
		for _, d := range []string{"images", "overlays", "services", "examples"} {
			if err := os.Symlink(filepath.Join(root, d), filepath.Join(dir, d)); err != nil {
				t.Fatal(err)
			}
		}
		os.Mkdir(filepath.Join(dir, "bin"), 0o755)
		os.Symlink(filepath.Join(bin, "pibake"), filepath.Join(dir, "bin", "pibake"))
		for _, s := range ss {
			runStep(t, rel, dir, bin, s)
		}
	}
	if total < 5 {
		t.Errorf("only %d checked commands in the docs: the %q blocks are gone?", total, fence)
	}
	t.Logf("%d commands of the docs run", total)
}

func runStep(t *testing.T, page, dir, bin string, s step) {
	t.Helper()
	cmd := exec.Command("sh", "-c", s.cmd)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+dir, "PIBAKE_CACHE="+filepath.Join(dir, "cache"), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s:%d: %v", page, s.line, err)
	}
	got := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for i := range got {
		got[i] = strings.TrimRight(got[i], " \t")
	}
	if len(out) == 0 {
		got = nil
	}
	if code != s.exit || !match(s.want, got) {
		t.Errorf("%s:%d: $ %s\nexit %d (the page says %d), output:\n%s\nthe page says:\n%s", page, s.line, s.cmd, code, s.exit, strings.Join(got, "\n"), strings.Join(s.want, "\n"))
	}
}
