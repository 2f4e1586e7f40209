package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/fdt"
	"github.com/pibake/pibake/firmware/initramfs"
)

// ModulePath is the module path of pibake's own source, which holds
// cmd/pibake-init.
const ModulePath = "github.com/pibake/pibake"

// FindSource walks up from dir to the checkout of pibake's source, whose
// cmd/pibake-init becomes the initramfs init.
func FindSource(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module "+ModulePath+"\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no pibake source above %s: the initramfs init (cmd/pibake-init) is compiled from it; run pibake from inside a pibake checkout (the folder that holds its go.mod, or one below it)", dir)
		}
		d = parent
	}
}

func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go", nil
	}
	return "", errors.New("the Go toolchain is needed to compile the initramfs init: put go on PATH")
}

// buildDevice cross-compiles a device program (./cmd/pibake-init,
// ./cmd/pibake-updater) for arm64. The flags make the binary depend only on
// the source and the Go version, not the path or the time.
func buildDevice(ctx context.Context, src, pkg, out string) (string, error) {
	gobin, err := goTool()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("compile %s in %s: %w\n%s", pkg, src, err, b)
	}
	v, err := exec.CommandContext(ctx, gobin, "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env: %w", err)
	}
	return strings.TrimSpace(string(v)), nil
}

// storageNeeds walks the root storage controller of every device tree the
// board ships and returns the modules its supplies, clocks and power
// domains need.
func storageNeeds(board firmware.Board, dtbs map[string][]byte, db *initramfs.ModuleDB) ([]initramfs.Need, error) {
	if len(board.Storage) == 0 {
		return nil, nil
	}
	names, err := board.SelectDTBs(dtbs)
	if err != nil {
		return nil, err
	}
	var needs []initramfs.Need
	for _, name := range names {
		tree, err := fdt.Parse(dtbs[name])
		if err != nil {
			return nil, fmt.Errorf("device tree %s: %w", name, err)
		}
		n, err := db.StorageModules(name, tree, board.Storage)
		if err != nil {
			return nil, err
		}
		needs = append(needs, n...)
	}
	return needs, nil
}

// buildInitramfs makes the initramfs (b.initrd): pibake-init plus the
// board's modules from the image's own kernel, in load order.
func (b *build) buildInitramfs(ctx context.Context) error {
	initBin := filepath.Join(b.staging, "pibake-init")
	goVersion, err := buildDevice(ctx, b.src, "./cmd/pibake-init", initBin)
	if err != nil {
		return err
	}
	initData, err := os.ReadFile(initBin)
	os.Remove(initBin)
	if err != nil {
		return err
	}
	entries, err := b.initramfsModules(ctx)
	if err != nil {
		return err
	}
	entries = append([]initramfs.Entry{{Path: "init", Mode: 0o755, Data: initData}}, entries...)
	var buf bytes.Buffer
	if err := initramfs.WriteCPIO(&buf, entries, b.epoch); err != nil {
		return err
	}
	b.initrd, b.goVersion = buf.Bytes(), goVersion
	return nil
}

// initramfsModules are the initramfs entries of the board's modules, in
// load order, and their list (lib/modules/pibake.modules).
func (b *build) initramfsModules(ctx context.Context) ([]initramfs.Entry, error) {
	board, rf := b.board, b.rf
	db, err := initramfs.ParseModuleDB(rf.res.ModulesDep, rf.res.ModulesBuiltin)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := db.ParseAliases(rf.res.ModulesAlias); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	needs, err := storageNeeds(board, rf.res.DTBs, db)
	if err != nil {
		return nil, fmt.Errorf("initramfs for %s: %w", board.Name, err)
	}
	names := append([]string(nil), initramfs.Modules[board.Name]...)
	for _, n := range needs {
		names = append(names, n.Module)
	}
	mods, err := db.Closure(names)
	if err != nil {
		return nil, fmt.Errorf("initramfs for %s: %w", board.Name, err)
	}
	modDir := "usr/lib/modules/" + rf.res.KernelVersion
	var paths []string
	for _, m := range mods {
		paths = append(paths, path.Join(modDir, m))
	}
	files, err := rf.base.ReadFiles(ctx, paths)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	var entries []initramfs.Entry
	var list strings.Builder
	for _, m := range mods {
		rel := path.Join(rf.res.KernelVersion, m)
		entries = append(entries, initramfs.Entry{Path: "lib/modules/" + rel, Mode: 0o644, Data: files[path.Join(modDir, m)]})
		list.WriteString(rel + "\n")
	}
	entries = append(entries, initramfs.Entry{Path: "lib/modules/pibake.modules", Mode: 0o644, Data: []byte(list.String())})
	return entries, nil
}
