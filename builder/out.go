package builder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pibake/pibake/manifest"
)

// The output folder is replaced whole when a build finishes (see
// moveIntoPlace), so a build only takes a folder that holds nothing
// pibake did not write: a missing or empty folder, or an earlier build's
// output whose every file SHA256SUMS lists. It never takes the current
// folder, the definition's folder or the project root, nor a folder
// that holds one of them.

// ErrOutDir is wrapped by every refusal of an output folder.
var ErrOutDir = errors.New("refused as output folder")

// DefaultOutDir is the output folder of a build given none:
// out/NAME-BOARD, or out/NAME-BOARD-ENV with an environment, below the
// current folder, so that builds for other boards and environments do
// not replace each other.
func DefaultOutDir(name, board, env string) string {
	n := name + "-" + board
	if env != "" {
		n += "-" + env
	}
	return filepath.Join("out", n)
}

// checkOutDir refuses out (absolute) when it is, or holds, the current
// folder, the definition or the project root, or holds files pibake did
// not write.
func checkOutDir(out, definition, root string) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	defAbs, err := filepath.Abs(definition)
	if err != nil {
		return err
	}
	real := realPath(out)
	for _, p := range []struct{ path, what string }{
		{cwd, "is the current folder or holds it"},
		{filepath.Dir(defAbs), "holds the image definition " + definition},
		{root, "holds the project root " + root + " (overlays/, services/)"},
	} {
		if p.path != "" && within(realPath(p.path), real) {
			return fmt.Errorf("--out %s %s: %w (a build replaces its output folder whole); pass a folder of its own, e.g. out/NAME-BOARD", out, p.what, ErrOutDir)
		}
	}
	return checkReplaceable(out)
}

// checkReplaceable refuses out unless it is missing, empty or an
// earlier build's output.
func checkReplaceable(out string) error {
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--out %s is a file, not a folder: %w; pass another --out", out, ErrOutDir)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("output folder: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	listed, err := builtFiles(out)
	if err != nil {
		return fmt.Errorf("--out %s holds %s and is no earlier pibake build (%v): %w (a build replaces its output folder whole); pass an empty or new folder", out, names(entries), err, ErrOutDir)
	}
	var foreign []string
	for _, e := range entries {
		if !slices.Contains(listed, e.Name()) || !e.Type().IsRegular() {
			foreign = append(foreign, e.Name())
		}
	}
	if len(foreign) > 0 {
		return fmt.Errorf("--out %s is an earlier pibake build but also holds what no build wrote (%s): %w (a build replaces its output folder whole); move them away or pass another --out", out, strings.Join(foreign, ", "), ErrOutDir)
	}
	return nil
}

// names lists a folder's first entries, for an error.
func names(entries []os.DirEntry) string {
	var n []string
	for i, e := range entries {
		if i == 5 {
			return strings.Join(n, ", ") + fmt.Sprintf(" and %d more", len(entries)-i)
		}
		n = append(n, e.Name())
	}
	return strings.Join(n, ", ")
}

// builtFiles are the files an earlier build wrote into dir: SHA256SUMS
// and every file it lists, provided its manifest.json is a build's.
func builtFiles(dir string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		return nil, fmt.Errorf("no readable %s", manifest.FileName)
	}
	m, err := manifest.Decode(data)
	if err != nil || m.Format != manifest.Format || m.Image == "" || m.Disk.File == "" {
		return nil, fmt.Errorf("%s is not a pibake build's", manifest.FileName)
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		return nil, errors.New("no readable SHA256SUMS")
	}
	names := []string{"SHA256SUMS"}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		_, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || name == "" || strings.ContainsRune(name, '/') {
			return nil, fmt.Errorf("SHA256SUMS line %q is not a build's", sc.Text())
		}
		names = append(names, name)
	}
	if !slices.Contains(names, manifest.FileName) {
		return nil, fmt.Errorf("SHA256SUMS does not list %s", manifest.FileName)
	}
	return names, nil
}

// realPath is p absolute with its symbolic links resolved, as far as it
// exists.
func realPath(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(realPath(parent), filepath.Base(p))
}

// within says whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
