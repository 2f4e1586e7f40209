// Package builder runs the image build pipeline: load the definition, fetch
// the locked Debian packages, bootstrap (or reuse) the cached base, turn it
// into the read-only root filesystem, gather the boot files, assemble the
// A/B disk image and write the manifest and checksums. Outputs are staged
// next to the output folder and renamed into place only when complete.
package builder

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/release"
)

// Options configure one build.
type Options struct {
	Definition string // path of images/<name>.yaml
	Env        string // environment overrides to merge ("" for none)
	Board      string // "" means the definition's first board
	OutDir     string // final output folder
	CacheDir   string // "" means debian.DefaultCacheDir()
	Source     string // pibake's source tree, for the initramfs init; "" means FindSource(".")
	Progress   io.Writer
	Log        *slog.Logger
	HTTPClient *http.Client
}

// Result lists what a build wrote.
type Result struct {
	OutDir   string
	Image    string
	Manifest *manifest.Manifest
	Stages   []StageTime
}

// ErrTooLarge means content does not fit its partition.
var ErrTooLarge = errors.New("does not fit its partition")

// LockPath is the lock file of a definition: images/<name>.lock.
func LockPath(definition string) string {
	return strings.TrimSuffix(definition, filepath.Ext(definition)) + ".lock"
}

// Inputs returns the Debian inputs a lock resolves.
func Inputs(d *imagedef.Definition) debian.Inputs {
	pk := append(append([]string(nil), d.Debian.Packages...), d.Network.Packages()...)
	return debian.Inputs{Suite: d.Debian.Suite, Components: d.Debian.Components, Variant: d.Debian.Variant, Packages: pk}
}

// Build runs the whole pipeline.
func Build(ctx context.Context, opts Options) (*Result, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	st := &stages{w: progress, total: 8}

	// 1. Load and check everything before any slow work.
	st.begin("load", opts.Definition)
	def, err := imagedef.Load(opts.Definition, imagedef.Options{Env: opts.Env})
	if err != nil {
		return nil, err
	}
	boardName := opts.Board
	if boardName == "" {
		boardName = def.DefaultBoard()
	}
	if !contains(def.Boards, boardName) {
		return nil, fmt.Errorf("board %q is not a target of %s (boards: %s)", boardName, def.File, strings.Join(def.Boards, ", "))
	}
	board, err := firmware.Lookup(boardName)
	if err != nil {
		return nil, err
	}
	if bootchain.Chain(def.Bootloader) == bootchain.Tryboot && board.Emulated {
		return nil, fmt.Errorf("%s: bootloader tryboot is the Pi firmware's own: it cannot boot under QEMU; build a Pi board", def.File)
	}
	lockPath := LockPath(opts.Definition)
	lock, lockData, err := debian.ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	if err := lock.Check(Inputs(def), lockPath); err != nil {
		return nil, err
	}
	epoch := lock.SourceDateEpoch
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if epoch, err = strconv.ParseInt(v, 10, 64); err != nil || epoch < debian.MinEpoch {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970, from 1980 on (FAT cannot store earlier dates)", v)
		}
	}
	lay, err := layout.Compute(layout.Sizes{Bootsel: int64(def.Partitions.Bootsel), Boot: int64(def.Partitions.Boot), Root: int64(def.Partitions.Root), Data: int64(def.Partitions.Data)})
	if err != nil {
		return nil, err
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		if cacheDir, err = debian.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	cache := debian.Cache{Dir: cacheDir}
	src := opts.Source
	if src == "" {
		if src, err = FindSource("."); err != nil {
			return nil, err
		}
	}
	if opts.OutDir == "" {
		return nil, errors.New("no output folder: pass --out DIR")
	}
	outDir, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(outDir), 0o755); err != nil {
		return nil, fmt.Errorf("create output folder: %w", err)
	}
	stage, err := os.MkdirTemp(filepath.Dir(outDir), "."+filepath.Base(outDir)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("create staging folder next to %s: %w", outDir, err)
	}
	defer os.RemoveAll(stage) // a failed build leaves nothing behind
	envName := def.Env
	st.end(fmt.Sprintf("%s %s, board %s, env %s, %d locked packages", def.Name, def.Version, board.Name, orDefault(envName), len(lock.Packages)))

	// 2. Every locked .deb, verified, in the cache.
	st.begin("fetch", "locked Debian packages into "+cache.Dir)
	fetcher := &debian.Fetcher{Mirror: def.Debian.Mirror, Cache: cache, Client: opts.HTTPClient, Log: log}
	n, err := fetcher.Fetch(ctx, lock.Packages)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	st.end(fmt.Sprintf("%d bytes downloaded", n))

	// 3. Containers: resolved for linux/arm64, checked against the lock,
	// flattened into trees for the root filesystem.
	st.begin("containers", fmt.Sprintf("%d container images", len(def.Containers)))
	containers, err := prepareContainers(ctx, def, lock, lockPath, cacheDir, epoch, stage)
	if err != nil {
		return nil, err
	}
	var treeBytes int64
	for _, c := range containers {
		treeBytes += c.treeBytes
	}
	st.end(fmt.Sprintf("%d containers, %d bytes of trees", len(containers), treeBytes))

	// 4. The base root filesystem, bootstrapped once per lock.
	st.begin("base", "Debian "+lock.Suite+" arm64 base")
	baseOpts := debian.BaseOptions{Variant: def.Debian.Variant, PathExclude: def.Debian.PathExclude, PathInclude: def.Debian.PathInclude}
	key, err := debian.BaseKey(ctx, lock, baseOpts)
	if err != nil {
		return nil, err
	}
	baseTar := cache.BasePath(key)
	note := "cached " + key
	if _, err := os.Stat(baseTar); err != nil {
		if baseTar, note, err = bootstrapOnce(ctx, lock, baseOpts, cache, key, progress, log); err != nil {
			return nil, err
		}
	}
	st.end(note)

	// 5. Root filesystem.
	st.begin("rootfs", "customise and pack the read-only root filesystem")
	rootImg := filepath.Join(stage, "root.sqfs")
	rf, err := buildRootfs(ctx, def, board, baseTar, epoch, rootImg, src, containers)
	if err != nil {
		return nil, err
	}
	rootPart, _ := lay.Part(layout.RootA)
	if rf.size > rootPart.Size {
		return nil, fmt.Errorf("root filesystem is %d MiB but partitions.root is %d MiB: %w; raise partitions.root in %s", (rf.size+layout.MiB-1)/layout.MiB, rootPart.Size/layout.MiB, ErrTooLarge, def.File)
	}
	st.end(fmt.Sprintf("%d packages, kernel %s, squashfs %s %d bytes", len(rf.res.Packages), rf.res.KernelVersion, rf.compressor, rf.size))

	// 6. Boot files.
	st.begin("boot", "initramfs, boot script, firmware, U-Boot, kernel and device trees")
	initrd, goVersion, err := buildInitramfs(ctx, src, board, rf, stage, epoch)
	if err != nil {
		return nil, err
	}
	os.Remove(filepath.Join(stage, "pibake-init"))
	bf, err := bootFiles(ctx, def, board, lock, cache, rf, initrd, diskSignature(def.Name))
	if err != nil {
		return nil, err
	}
	st.end(fmt.Sprintf("initramfs %d bytes, bootsel %d files, boot slot %d files", len(initrd), len(bf.bootsel), len(bf.slots[bootchain.A])))

	// 7. Disk image.
	st.begin("disk", "assemble the A/B disk image")
	imgName := def.Name + ".img"
	imgPath := filepath.Join(stage, imgName)
	sig := diskSignature(def.Name)
	written, err := assemble(imgPath, lay, sig, def, bf, rootImg, epoch)
	if err != nil {
		return nil, err
	}
	os.Remove(rootImg)
	// The manifest's checksums, on one core while the other compresses.
	sumsc := make(chan imageSums, 1)
	go func() { sumsc <- hashImageWritten(imgPath, lay, written) }()
	// The release forms: NAME.img.zst and NAME.bmap of the blocks written.
	rel, err := release.Write(ctx, stage, imgName, written)
	sums := <-sumsc
	if err != nil {
		return nil, err
	}
	st.end(fmt.Sprintf("%d MiB, disk signature %08x; %s: %d MiB mapped; %s: %d bytes", lay.DiskSize/layout.MiB, sig, rel.Bmap.Name, rel.Map.MappedBytes()/layout.MiB, rel.Zst.Name, rel.Zst.Size))

	// 8. Manifest and checksums, then move into place.
	st.begin("manifest", "manifest.json and SHA256SUMS")
	mmdebstrap, err := debian.MmdebstrapVersion(ctx)
	if err != nil {
		return nil, err
	}
	m, err := writeManifest(stage, imgName, def, board, lay, sig, lock, lockData, lockPath, rf, epoch, goVersion, mmdebstrap, len(initrd), releaseFiles(rel), sums)
	if err != nil {
		return nil, err
	}
	// The SPDX SBOM (NAME.spdx.json), listed in SHA256SUMS.
	if err := writeSBOM(stage, m, lock, board); err != nil {
		return nil, err
	}
	if err := publish(stage, outDir); err != nil {
		return nil, err
	}
	st.end(outDir)
	return &Result{OutDir: outDir, Image: filepath.Join(outDir, imgName), Manifest: m, Stages: st.done}, nil
}

// publish replaces outDir with the finished staging folder.
func publish(stage, outDir string) error {
	old := ""
	if _, err := os.Stat(outDir); err == nil {
		old = stage + ".old"
		if err := os.Rename(outDir, old); err != nil {
			return fmt.Errorf("move old output %s aside: %w", outDir, err)
		}
	}
	if err := os.Rename(stage, outDir); err != nil {
		if old != "" {
			_ = os.Rename(old, outDir)
		}
		return fmt.Errorf("move build into %s: %w", outDir, err)
	}
	if err := os.Chmod(outDir, 0o755); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// diskSignature derives the MBR disk signature (and so every PARTUUID) from
// the image name: stable across versions, so root=PARTUUID= in a slot
// written by an update still matches.
func diskSignature(name string) uint32 {
	sum := sha256.Sum256([]byte("pibake disk signature\x00" + name))
	s := binary.LittleEndian.Uint32(sum[:4])
	if s == 0 {
		s = 1
	}
	return s
}

func volumeID(name, part string) uint32 {
	sum := sha256.Sum256([]byte("pibake volume id\x00" + name + "\x00" + part))
	return binary.LittleEndian.Uint32(sum[:4])
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func orDefault(env string) string {
	if env == "" {
		return "default"
	}
	return env
}

// bootstrapOnce bootstraps the base under the cache's lock for its key:
// a build that waited for another one finds the base cached.
func bootstrapOnce(ctx context.Context, lock *debian.Lock, o debian.BaseOptions, cache debian.Cache, key string, progress io.Writer, log *slog.Logger) (string, string, error) {
	unlock, err := cache.LockBase(ctx, key, func() {
		fmt.Fprintf(progress, "      waiting for another build that is bootstrapping the same base\n")
	})
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if _, err := os.Stat(cache.BasePath(key)); err == nil {
		return cache.BasePath(key), "cached " + key + " (bootstrapped by another build meanwhile)", nil
	}
	fmt.Fprintf(progress, "      bootstrapping with mmdebstrap: several minutes, once per lock\n")
	tar, err := debian.Bootstrap(ctx, lock, o, cache, key, log)
	return tar, "bootstrapped " + key, err
}
