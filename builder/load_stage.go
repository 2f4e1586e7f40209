package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/internal/deviceprog"
)

// load checks everything before any slow work: the definition and its
// board, the lock, the epoch, the partition layout, the cache, the source
// and the output folder. It ends by creating the staging folder.
func (b *build) load(context.Context) (string, error) {
	if err := b.loadDefinition(); err != nil {
		return "", err
	}
	if err := b.loadLock(); err != nil {
		return "", err
	}
	if err := b.settle(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s, board %s, env %s, %d locked packages, device programs %s, into %s", b.def.Name, b.def.Version, b.board.Name, orDefault(b.def.Env), len(b.lock.Packages), b.progs, b.outDir), nil
}

// loadDefinition reads the definition and picks the board.
func (b *build) loadDefinition() error {
	def, err := imagedef.Load(b.opts.Definition, imagedef.Options{Env: b.opts.Env})
	if err != nil {
		return err
	}
	b.def = def
	boardName := b.opts.Board
	if boardName == "" {
		boardName = def.DefaultBoard()
	}
	if !slices.Contains(def.Boards, boardName) {
		return fmt.Errorf("board %q is not a target of %s (boards: %s)", boardName, def.File, strings.Join(def.Boards, ", "))
	}
	if b.board, err = firmware.Lookup(boardName); err != nil {
		return err
	}
	if bootchain.Chain(def.Bootloader) == bootchain.Tryboot && b.board.Emulated {
		return fmt.Errorf("%s: bootloader tryboot is the Pi firmware's own: it cannot boot under QEMU; build a Pi board", def.File)
	}
	return nil
}

// loadLock reads the lock, checks it matches the definition and takes
// the epoch from it or from SOURCE_DATE_EPOCH.
func (b *build) loadLock() error {
	b.lockPath = LockPath(b.opts.Definition)
	lock, data, err := debian.ReadLock(b.lockPath)
	if err != nil {
		return err
	}
	if err := lock.Check(Inputs(b.def), b.lockPath); err != nil {
		return err
	}
	b.lock, b.lockData = lock, data
	b.epoch = lock.SourceDateEpoch
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if b.epoch, err = strconv.ParseInt(v, 10, 64); err != nil || b.epoch < debian.MinEpoch {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970, from 1980 on (FAT cannot store earlier dates)", v)
		}
	}
	return nil
}

// settle computes the partition layout, finds the cache and the device
// programs, checks the output folder (checkOutDir) and creates the
// staging folder next to it.
func (b *build) settle() error {
	def := b.def
	var err error
	if b.lay, err = layout.Compute(layout.Sizes{Bootsel: int64(def.Partitions.Bootsel), Boot: int64(def.Partitions.Boot), Root: int64(def.Partitions.Root), Data: int64(def.Partitions.Data)}); err != nil {
		return err
	}
	b.sig = diskSignature(def.Name)
	b.imgName = def.Name + ".img"
	cacheDir := b.opts.CacheDir
	if cacheDir == "" {
		if cacheDir, err = debian.DefaultCacheDir(); err != nil {
			return err
		}
	}
	b.cache = debian.Cache{Dir: cacheDir}
	if b.progs, err = deviceprog.Find(b.opts.Source); err != nil {
		return err
	}
	out := b.opts.OutDir
	if out == "" {
		out = DefaultOutDir(def.Name, b.board.Name, def.Env)
	}
	if b.outDir, err = filepath.Abs(out); err != nil {
		return err
	}
	if err := checkOutDir(b.outDir, b.opts.Definition, def.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.outDir), 0o755); err != nil {
		return fmt.Errorf("create output folder: %w", err)
	}
	if b.staging, err = os.MkdirTemp(filepath.Dir(b.outDir), "."+filepath.Base(b.outDir)+".partial-"); err != nil {
		return fmt.Errorf("create staging folder next to %s: %w", b.outDir, err)
	}
	return nil
}
