package main

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// initRepo is the repository 'pibake init' writes. Names are rewritten
// on the way out (initPath); @NAME@ in a file becomes the image's name.
//
//go:embed initrepo
var initRepo embed.FS

// initName is what an image name may be (imagedef's rule), short enough
// for NAME-preprod to stay a host name.
var initName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,49}$`)

func cmdInit(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", "init [--name NAME] DIR   (writes a new repository for an image: definition, overlay, Makefile, .gitignore, CI)", stdout, stderr)
	name := fs.String("name", "", "the image's name: lower-case letters, digits and - (default: DIR's name)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	dir, err := oneArg(fs, pos, "folder")
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	n := *name
	if n == "" {
		n = filepath.Base(abs)
	}
	if !initName.MatchString(n) {
		return fmt.Errorf("init: %q is no image name (lower-case letters, digits and -, at most 50): pass --name NAME: %w", n, errUsage)
	}
	if err := emptyOrMissing(dir); err != nil {
		return err
	}
	files, err := writeInitRepo(dir, n)
	if err != nil {
		return err
	}
	def := path.Join("images", n+".yaml")
	fmt.Fprintf(stdout, "wrote %d files into %s: %s\nnext:\n  cd %s\n  pibake lock %s    # pins the Debian packages into images/%s.lock\n  pibake build %s   # into out/%s-pi4/\n  git init && git add -A    # then set PIBAKE_VERSION in .github/workflows/images.yml\n",
		len(files), dir, strings.Join(files, ", "), dir, def, n, def, n)
	return nil
}

// emptyOrMissing refuses a folder that holds anything: init never
// writes over what is there.
func emptyOrMissing(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return fmt.Errorf("init: %s is not empty (it holds %s): pibake init writes a new repository; pass a new or empty folder", dir, strings.Join(names, ", "))
	}
	return nil
}

// initPath is where a template file goes: dot files are kept without
// their dot in pibake's source, NAME is the image's name.
func initPath(p, name string) string {
	p = strings.TrimPrefix(p, "initrepo/")
	switch {
	case p == "gitignore":
		p = ".gitignore"
	case strings.HasPrefix(p, "github/"):
		p = "." + p
	}
	return strings.Replace(p, "/NAME.", "/"+name+".", 1)
}

// writeInitRepo writes the template into dir and returns the files
// written, each created new (never over an existing one).
func writeInitRepo(dir, name string) ([]string, error) {
	var written []string
	err := fs.WalkDir(initRepo, "initrepo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := initRepo.ReadFile(p)
		if err != nil {
			return err
		}
		rel := initPath(p, name)
		full := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString(strings.ReplaceAll(string(data), "@NAME@", name))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		written = append(written, rel)
		return err
	})
	if err != nil {
		return written, fmt.Errorf("init: write %s: %w", dir, err)
	}
	return written, nil
}
