// Package deviceprog owns the programs pibake puts on a device: the
// initramfs init (cmd/pibake-init) and the update agent
// (cmd/pibake-updater). A build takes them from one of two places:
//
//   - embedded in the pibake binary, when pibake was built by `make build`
//     or `make install` (the build tag pibake_embed; the Makefile first
//     runs gen.go, which compiles them into programs/, a git-ignored
//     folder);
//   - a pibake checkout, compiled at every build: the folder --src names,
//     else the checkout above the current folder (for development, and
//     for a pibake built with plain `go build` or `go install`).
//
// Both compile with the same flags (Compile), so an image built by an
// installed pibake has the bytes of one built from the checkout it was
// installed from, with the same Go. Version names the pibake source the
// programs came from; the manifest records it as the agent's version.
package deviceprog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/internal/gocompile"
)

// ModulePath is the module path of pibake's source.
const ModulePath = "github.com/pibake/pibake"

// Programs maps each device program to its package in pibake's source.
var Programs = map[string]string{
	Init:    "./cmd/pibake-init",
	Updater: "./cmd/pibake-updater",
}

// The device programs by name.
const (
	Init    = "pibake-init"
	Updater = "pibake-updater"
)

// Files next to the programs in the embedded folder.
const (
	VersionFile = "version" // the pibake version they were compiled from
	GoFile      = "go"      // the Go that compiled them (go env GOVERSION)
)

// ErrNoPrograms means this pibake carries no device programs and no
// pibake checkout was found to compile them from.
var ErrNoPrograms = errors.New("no device programs")

// Source is where a build takes the device programs from.
type Source struct {
	dir      string // a pibake checkout, "" when embedded
	embedded fs.FS
}

// Program is one compiled device program.
type Program struct {
	Data []byte
	Go   string // the Go that compiled it
}

// Find picks the source: the checkout src when given, else the programs
// embedded in this pibake, else the pibake checkout above the current
// folder.
func Find(src string) (*Source, error) {
	if src != "" {
		dir, err := filepath.Abs(src)
		if err != nil {
			return nil, err
		}
		if !isCheckout(dir) {
			return nil, fmt.Errorf("--src %s: not a pibake checkout (no go.mod of %s there)", src, ModulePath)
		}
		return &Source{dir: dir}, nil
	}
	if e := embedded(); e != nil {
		return &Source{embedded: e}, nil
	}
	dir, err := FindCheckout(".")
	if err != nil {
		return nil, fmt.Errorf("%w: this pibake was built without the device programs (pibake-init, pibake-updater) and %w; install pibake with 'make install' in a pibake checkout (docs/install.md), or pass --src DIR, a pibake checkout of the version to put on the device", ErrNoPrograms, err)
	}
	return &Source{dir: dir}, nil
}

// String says where the programs come from, for progress lines.
func (s *Source) String() string {
	if s.dir == "" {
		return "embedded in pibake"
	}
	return "compiled from " + s.dir
}

// Program returns the device program name (Init or Updater), compiled
// for arm64 in tmpDir when it comes from a checkout.
func (s *Source) Program(ctx context.Context, name, tmpDir string) (Program, error) {
	pkg, ok := Programs[name]
	if !ok {
		return Program{}, fmt.Errorf("no device program %q", name)
	}
	if s.dir == "" {
		data, err := fs.ReadFile(s.embedded, name)
		if err != nil {
			return Program{}, fmt.Errorf("%s embedded in pibake: %w", name, err)
		}
		goVersion, err := fs.ReadFile(s.embedded, GoFile)
		if err != nil {
			return Program{}, fmt.Errorf("embedded device programs: %w", err)
		}
		return Program{Data: data, Go: strings.TrimSpace(string(goVersion))}, nil
	}
	out, err := os.MkdirTemp(tmpDir, "."+name+"-")
	if err != nil {
		return Program{}, err
	}
	defer os.RemoveAll(out)
	bin := filepath.Join(out, name)
	goVersion, err := Compile(ctx, s.dir, pkg, bin)
	if err != nil {
		return Program{}, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return Program{}, err
	}
	return Program{Data: data, Go: goVersion}, nil
}

// Version is the pibake version the programs come from: the one the
// Makefile stamped when they were embedded, or the checkout's
// `git describe --always --dirty` (the Makefile's VERSION), else "dev".
func (s *Source) Version(ctx context.Context) string {
	if s.dir == "" {
		if v, err := fs.ReadFile(s.embedded, VersionFile); err == nil {
			return strings.TrimSpace(string(v))
		}
		return "dev"
	}
	return CheckoutVersion(ctx, s.dir)
}

// CheckoutVersion is `git describe --always --dirty` in dir, or "dev".
func CheckoutVersion(ctx context.Context, dir string) string {
	cmd := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	cmd.Dir = dir
	out, err := cmd.Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}

// FindCheckout walks up from dir to a pibake checkout: the folder whose
// go.mod declares ModulePath.
func FindCheckout(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for start := d; ; {
		if isCheckout(d) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no pibake checkout is above %s", start)
		}
		d = parent
	}
}

func isCheckout(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	return err == nil && bytes.HasPrefix(b, []byte("module "+ModulePath+"\n"))
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go", nil
	}
	return "", errors.New("the Go toolchain is needed to compile the device programs from a pibake checkout: put go on PATH, or use a pibake built by 'make install', which carries them")
}

// Compile cross-compiles the device program pkg (e.g. ./cmd/pibake-init)
// of the checkout src for linux/arm64 into out and returns the Go
// version. The flags make the binary depend only on the source and the
// Go version, not on the path, the time or the version control state.
func Compile(ctx context.Context, src, pkg, out string) (string, error) {
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	if err := gocompile.Arm64(ctx, gobin, src, pkg, out, ""); err != nil {
		return "", fmt.Errorf("compile: %w", err)
	}
	v, err := exec.CommandContext(ctx, gobin, "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	return strings.TrimSpace(string(v)), nil
}
