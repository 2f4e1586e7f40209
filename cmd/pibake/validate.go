package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/internal/yamlerr"
)

// problem is one thing wrong with a definition, as validate reports it.
type problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Env     string `json:"env,omitempty"` // the environment it appears in, when not in the base
	Message string `json:"message"`
}

func (p problem) String() string {
	s := p.File
	if p.Line > 0 {
		s += fmt.Sprintf(":%d", p.Line)
	}
	if p.Field != "" {
		s += ": " + p.Field
	}
	if p.Env != "" {
		s += " (environment " + p.Env + ")"
	}
	return s + ": " + p.Message
}

// validation is validate's verdict on one definition.
type validation struct {
	File         string    `json:"file"`
	OK           bool      `json:"ok"`
	Name         string    `json:"name,omitempty"`
	Version      string    `json:"version,omitempty"`
	Boards       []string  `json:"boards,omitempty"`
	Environments []string  `json:"environments"`
	Lock         string    `json:"lock"` // fresh, missing, stale or malformed
	Problems     []problem `json:"problems"`
	Notes        []string  `json:"notes,omitempty"`
}

func cmdValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", "validate [--env ENV] [--json] images/NAME.yaml...", stdout, stderr)
	env := fs.String("env", "", "check only this environment (default: the base and every declared environment)")
	asJSON := fs.Bool("json", false, "print the verdicts as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("no definition given: %w", errUsage)
	}
	var all []validation
	bad, n := 0, 0
	for _, p := range pos {
		v := validateOne(p, *env)
		all = append(all, v)
		if !v.OK {
			bad++
			n += len(v.Problems)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(all); err != nil {
			return err
		}
	} else {
		for _, v := range all {
			printValidation(stdout, v)
		}
	}
	if bad > 0 {
		return fmt.Errorf("validate: %s in %s of %d", plural(n, "problem"), plural(bad, "definition"), len(pos))
	}
	return nil
}

func printValidation(w io.Writer, v validation) {
	if v.OK {
		envs := strings.Join(v.Environments, ",")
		if envs == "" {
			envs = "none"
		}
		fmt.Fprintf(w, "%s: ok (%s %s, boards %s, environments: %s)\n", v.File, v.Name, v.Version, strings.Join(v.Boards, ","), envs)
	}
	for _, p := range v.Problems {
		fmt.Fprintln(w, p)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "%s: note: %s\n", v.File, n)
	}
}

// validateOne loads the definition with each environment asked for,
// checks it (imagedef's Load and Check) and its lock, and gathers every
// problem, each once.
func validateOne(path, env string) validation {
	v := validation{File: path, Environments: []string{}}
	lockPath := builder.LockPath(path)
	add := func(env, file string, err error) {
		for _, p := range problems(file, err) {
			p.Env = env
			if !slices.ContainsFunc(v.Problems, func(q problem) bool { return q.Message == p.Message && q.Field == p.Field && q.File == p.File }) {
				v.Problems = append(v.Problems, p)
			}
		}
	}
	d, err := imagedef.LoadChecked(path, imagedef.Options{Env: env})
	add("", path, err)
	if d == nil {
		return v
	}
	v.Name, v.Version, v.Boards, v.Environments = d.Name, d.Version, d.Boards, append(v.Environments, d.EnvNames()...)
	envs := []string{env}
	if env == "" {
		envs = append(envs, d.EnvNames()...)
	}
	for _, e := range envs {
		de := d
		if e != env {
			de, err = imagedef.LoadChecked(path, imagedef.Options{Env: e})
			add(e, path, err)
			if de == nil {
				continue
			}
		}
		var pkgs []string
		v.Lock, pkgs, err = checkLock(de, lockPath)
		add(e, lockPath, err)
		if errs := de.Check(imagedef.CheckOptions{Packages: pkgs}); len(errs) > 0 {
			add(e, path, errs)
		}
	}
	if v.Lock == "missing" {
		v.Notes = append(v.Notes, fmt.Sprintf("no lock file %s yet: run 'pibake lock %s' before building", lockPath, path))
	}
	slices.SortStableFunc(v.Problems, func(a, b problem) int {
		if a.File != b.File {
			return strings.Compare(a.File, b.File)
		}
		return a.Line - b.Line
	})
	v.OK = len(v.Problems) == 0
	return v
}

// checkLock reads the definition's lock as the build would and checks it
// against the definition: its format, its package set and the container
// images it pins. It returns the lock's state and, when it is fresh, the
// packages it installs into the root filesystem.
func checkLock(d *imagedef.Definition, path string) (string, []string, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "missing", nil, nil
	}
	lock, _, err := debian.ReadLock(path)
	if err != nil {
		return "malformed", nil, err
	}
	if err := lock.Check(builder.Inputs(d), path); err != nil {
		return "stale", nil, err
	}
	for _, c := range d.Containers {
		if _, ok := lock.Container(c.Name, c.Image); c.Image != "" && !ok {
			return "stale", nil, fmt.Errorf("%s: container %s's image %s is not pinned: run 'pibake lock --containers %s'", path, c.Name, c.Image, d.File)
		}
	}
	var pkgs []string
	for _, p := range lock.Role(debian.RoleRoot) {
		pkgs = append(pkgs, p.Name)
	}
	return "fresh", pkgs, nil
}

// problems splits an error of Load, Check or the lock into one problem
// per place.
func problems(file string, err error) []problem {
	if err == nil {
		return nil
	}
	var es yamlerr.Errors
	if errors.As(err, &es) {
		var out []problem
		for _, e := range es {
			out = append(out, problem{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg})
		}
		return out
	}
	var e *yamlerr.Error
	if errors.As(err, &e) {
		return []problem{{File: e.File, Line: e.Line, Field: e.Field, Message: e.Msg}}
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, file+": "); ok {
		msg = rest
	}
	return []problem{{File: file, Message: msg}}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
