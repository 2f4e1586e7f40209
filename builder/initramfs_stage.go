package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	"github.com/pibake/pibake/builder/rootfs"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/fdt"
	"github.com/pibake/pibake/firmware/initramfs"
	"github.com/pibake/pibake/internal/deviceprog"
	"github.com/pibake/pibake/manifest"
)

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

// agentProgram is the update agent (/usr/bin/pibake-updater); it
// records its version and digest for the manifest.
func (b *build) agentProgram(ctx context.Context) (rootfs.File, error) {
	p, err := b.progs.Program(ctx, deviceprog.Updater, b.staging)
	if err != nil {
		return rootfs.File{}, err
	}
	sum := sha256.Sum256(p.Data)
	b.agent = manifest.Agent{Version: b.progs.Version(ctx), SHA256: hex.EncodeToString(sum[:])}
	return rootfs.File{Path: "/usr/bin/pibake-updater", Data: p.Data, Mode: 0o755}, nil
}

// buildInitramfs makes the initramfs (b.initrd): pibake-init plus the
// board's modules from the image's own kernel, in load order.
func (b *build) buildInitramfs(ctx context.Context) error {
	init, err := b.progs.Program(ctx, deviceprog.Init, b.staging)
	if err != nil {
		return err
	}
	entries, err := b.initramfsModules(ctx)
	if err != nil {
		return err
	}
	entries = append([]initramfs.Entry{{Path: "init", Mode: 0o755, Data: init.Data}}, entries...)
	var buf bytes.Buffer
	if err := initramfs.WriteCPIO(&buf, entries, b.epoch); err != nil {
		return err
	}
	b.initrd, b.goVersion = buf.Bytes(), init.Go
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
