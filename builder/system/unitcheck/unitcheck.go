// Package unitcheck checks the systemd units an image ships with the
// host's own systemd-analyze: their exposure (`security --offline=yes`,
// 0.0 for a unit that can do nothing to 10.0 for root with no sandbox)
// and that systemd loads them without a complaint (`verify`, in a root
// of its own). It also reads a unit's sandbox back, so that a test can
// check the unit can still do its job: that every path its program
// writes is writable. Only tests import it.
package unitcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// ErrNoAnalyze means the host has no systemd-analyze (Debian's systemd
// package; scripts/deps.sh installs it).
var ErrNoAnalyze = errors.New("systemd-analyze is not installed (Debian package systemd; make deps installs it)")

func analyze() (string, error) {
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return "", ErrNoAnalyze
	}
	return p, nil
}

var reOverall = regexp.MustCompile(`Overall exposure level for \S+: ([0-9]+\.[0-9])`)

// Exposure rates the unit file at path (its name is the unit's name) with
// `systemd-analyze security --offline=yes --threshold=` max: it returns
// the overall exposure and the whole table, and an error when the unit
// is rated above max or systemd-analyze complained about the file.
func Exposure(ctx context.Context, path string, max float64) (float64, string, error) {
	bin, err := analyze()
	if err != nil {
		return 0, "", err
	}
	// The threshold is on systemd-analyze's scale of 0 to 100.
	threshold := strconv.Itoa(int(max*10 + 0.5))
	cmd := exec.CommandContext(ctx, bin, "security", "--offline=yes", "--no-pager", "--threshold="+threshold, path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	table := stdout.String()
	m := reOverall.FindStringSubmatch(table)
	if m == nil {
		return 0, table, fmt.Errorf("systemd-analyze security %s: no overall exposure in its output (%v): %s", filepath.Base(path), runErr, stderr.String())
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	switch {
	case stderr.Len() > 0:
		return score, table, fmt.Errorf("systemd-analyze security %s complained: %s", filepath.Base(path), strings.TrimSpace(stderr.String()))
	case score > max || runErr != nil:
		return score, table, fmt.Errorf("%s: exposure %.1f, above its threshold %.1f (%v)", filepath.Base(path), score, max, runErr)
	}
	return score, table, nil
}

// Verify runs `systemd-analyze verify` on units (name → bytes) in a root
// of their own under dir: the host's unit folder, these units, an empty
// executable for every program they start and an empty unit for every
// unit they require that neither has. Any word from systemd-analyze (an
// unknown setting, a value it cannot parse, a dependency it cannot
// load) is an error.
func Verify(ctx context.Context, dir string, units map[string][]byte) error {
	bin, err := analyze()
	if err != nil {
		return err
	}
	unitDir := filepath.Join(dir, "usr/lib/systemd/system")
	if err := copyTree("/usr/lib/systemd/system", unitDir); err != nil {
		return fmt.Errorf("the host's units: %w", err)
	}
	if err := stub(filepath.Join(dir, "usr/bin/true"), "#!/bin/sh\n", 0o755); err != nil {
		return err
	}
	var paths []string
	for name, data := range units {
		p := filepath.Join(unitDir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
		paths = append(paths, p)
		for _, prog := range Programs(data) {
			if err := stub(filepath.Join(dir, prog), "#!/bin/sh\n", 0o755); err != nil {
				return err
			}
		}
		for _, u := range Required(data) {
			if _, err := os.Lstat(filepath.Join(unitDir, u)); errors.Is(err, fs.ErrNotExist) {
				text := "[Unit]\nDescription=stand-in for the image's " + u + "\n"
				if strings.HasSuffix(u, ".service") {
					text += "[Service]\nExecStart=/usr/bin/true\n"
				}
				if err := stub(filepath.Join(unitDir, u), text, 0o644); err != nil {
					return err
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"verify", "--root=" + dir, "--man=no"}, paths...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		return fmt.Errorf("systemd-analyze verify (%v): %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func stub(path, text string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(text), mode)
}

// copyTree copies the regular files and symlinks (as they are) of src.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, data, 0o644)
		}
		return nil
	})
}

// SyscallGroups are the host's system call groups (systemd-analyze
// syscall-filter), each with every call of the groups it names.
func SyscallGroups(ctx context.Context) (map[string][]string, error) {
	bin, err := analyze()
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "syscall-filter", "--no-pager").Output()
	if err != nil {
		return nil, fmt.Errorf("systemd-analyze syscall-filter: %w", err)
	}
	direct := map[string][]string{}
	group := ""
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.TrimSpace(l)
		switch {
		case f == "" || strings.HasPrefix(f, "#"):
		case !strings.HasPrefix(l, " ") && strings.HasPrefix(f, "@"):
			group = f
		case group != "":
			direct[group] = append(direct[group], f)
		}
	}
	groups := map[string][]string{}
	var expand func(g string, seen map[string]bool) []string
	expand = func(g string, seen map[string]bool) []string {
		var calls []string
		for _, m := range direct[g] {
			if strings.HasPrefix(m, "@") {
				if !seen[m] {
					seen[m] = true
					calls = append(calls, expand(m, seen)...)
				}
				continue
			}
			calls = append(calls, m)
		}
		return calls
	}
	for g := range direct {
		groups[g] = expand(g, map[string]bool{g: true})
	}
	return groups, nil
}
