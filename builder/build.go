// Package builder runs the image build pipeline: load the definition, fetch
// the locked Debian packages, bootstrap (or reuse) the cached base, turn it
// into the read-only root filesystem, gather the boot files, assemble the
// A/B disk image and write the manifest and checksums. Outputs are staged
// next to the output folder and renamed into place only when complete.
//
// One build is a value (build) with one method per stage; each stage reads
// what the earlier ones left on it, and every error a build returns names
// the stage that failed ("build NAME: STAGE: ...").
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
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/internal/deviceprog"
	"github.com/pibake/pibake/manifest"
)

// Options configure one build.
type Options struct {
	Definition string // path of images/<name>.yaml
	Env        string // environment overrides to merge ("" for none)
	Board      string // "" means the definition's first board
	OutDir     string // final output folder; "" means DefaultOutDir

	CacheDir   string // "" means debian.DefaultCacheDir()
	Source     string // a pibake checkout to compile the device programs from; "" means deviceprog.Find's choice
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
	in := debian.Inputs{Suite: d.Debian.Suite, Components: d.Debian.Components, Variant: d.Debian.Variant, Packages: pk}
	for _, a := range Archives(d)[1:] {
		in.Archives = append(in.Archives, a.Suite)
	}
	return in
}

// build is one run of the pipeline. The load stage fills in what the
// options, the definition and the lock decide; each later stage adds its
// result for the stages after it.
type build struct {
	opts     Options
	name     string // the definition's file name without extension, for errors
	log      *slog.Logger
	progress io.Writer

	// Decided by the load stage.
	def      *imagedef.Definition
	board    firmware.Board
	lockPath string
	lock     *debian.Lock
	lockData []byte // the lock file's bytes, whose digest the manifest records
	epoch    int64  // the timestamp of every file in the image
	lay      layout.Layout
	sig      uint32 // the MBR disk signature
	cache    debian.Cache
	progs    *deviceprog.Source // where pibake-init and pibake-updater come from
	outDir   string             // absolute
	staging  string             // the folder next to outDir the outputs are written to

	// Left by the later stages, in order.
	containers []preparedContainer
	baseTar    string
	rootImg    string // the squashfs, in staging until the disk holds it
	rf         *rootfsOut
	initrd     []byte
	goVersion  string         // the Go that compiled the device programs
	agent      manifest.Agent // the update agent's version and digest
	boot       *bootSet
	imgName    string
	sums       imageSums
	release    []manifest.File // NAME.img.zst and NAME.bmap
	manifest   *manifest.Manifest
}

// stage is one step of the pipeline as the progress shows it: "[n/N] name
// what", then the note run returns.
type stage struct {
	name string
	what func(b *build) string
	run  func(b *build, ctx context.Context) (note string, err error)
}

// pipeline is the build, in order.
var pipeline = []stage{
	{"load", func(b *build) string { return b.opts.Definition }, (*build).load},
	{"fetch", func(b *build) string { return "locked Debian packages into " + b.cache.Dir }, (*build).fetch},
	{"containers", func(b *build) string { return fmt.Sprintf("%d container images", len(b.def.Containers)) }, (*build).prepareContainers},
	{"base", func(b *build) string { return "Debian " + b.lock.Suite + " arm64 base" }, (*build).prepareBase},
	{"rootfs", says("customise and pack the read-only root filesystem"), (*build).packRootfs},
	{"boot", says("initramfs, boot script, firmware, U-Boot, kernel and device trees"), (*build).makeBoot},
	{"disk", says("assemble the A/B disk image"), (*build).assembleDisk},
	{"manifest", says("manifest.json and SHA256SUMS"), (*build).writeOutputs},
}

func says(what string) func(*build) string { return func(*build) string { return what } }

// Build runs the whole pipeline.
func Build(ctx context.Context, opts Options) (*Result, error) {
	b := &build{opts: opts, log: opts.Log, progress: opts.Progress,
		name: strings.TrimSuffix(filepath.Base(opts.Definition), filepath.Ext(opts.Definition))}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.progress == nil {
		b.progress = io.Discard
	}
	defer b.removeStaging() // a failed build leaves nothing behind
	st := &stages{w: b.progress, total: len(pipeline)}
	for _, s := range pipeline {
		st.begin(s.name, s.what(b))
		note, err := s.run(b, ctx)
		if err != nil {
			return nil, fmt.Errorf("build %s: %s: %w", b.name, s.name, err)
		}
		st.end(note)
	}
	return &Result{OutDir: b.outDir, Image: filepath.Join(b.outDir, b.imgName), Manifest: b.manifest, Stages: st.done}, nil
}

func (b *build) removeStaging() {
	if b.staging != "" {
		os.RemoveAll(b.staging)
	}
}

// fetch puts every locked .deb, verified, in the cache.
func (b *build) fetch(ctx context.Context) (string, error) {
	fetcher := &debian.Fetcher{Archives: Archives(b.def), Suite: b.lock.Suite, Cache: b.cache, Client: b.opts.HTTPClient, Log: b.log}
	n, err := fetcher.Fetch(ctx, b.lock.Packages)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d bytes downloaded", n), nil
}

// prepareBase finds the base root filesystem in the cache or bootstraps
// it: once per lock.
func (b *build) prepareBase(ctx context.Context) (string, error) {
	o := debian.BaseOptions{Variant: b.def.Debian.Variant, PathExclude: b.def.Debian.PathExclude, PathInclude: b.def.Debian.PathInclude}
	key, err := debian.BaseKey(ctx, b.lock, o)
	if err != nil {
		return "", err
	}
	b.baseTar = b.cache.BasePath(key)
	if _, err := os.Stat(b.baseTar); err == nil {
		return "cached " + key, nil
	}
	return b.bootstrapOnce(ctx, o, key)
}

// bootstrapOnce bootstraps the base under the cache's lock for its key:
// a build that waited for another one finds the base cached.
func (b *build) bootstrapOnce(ctx context.Context, o debian.BaseOptions, key string) (string, error) {
	unlock, err := b.cache.LockBase(ctx, key, func() {
		fmt.Fprintf(b.progress, "      waiting for another build that is bootstrapping the same base\n")
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(b.cache.BasePath(key)); err == nil {
		return "cached " + key + " (bootstrapped by another build meanwhile)", nil
	}
	fmt.Fprintf(b.progress, "      bootstrapping with mmdebstrap: several minutes, once per lock\n")
	tar, err := debian.Bootstrap(ctx, b.lock, o, b.cache, key, b.log)
	if err != nil {
		return "", err
	}
	b.baseTar = tar
	return "bootstrapped " + key, nil
}

// makeBoot makes the initramfs and every boot partition's files.
func (b *build) makeBoot(ctx context.Context) (string, error) {
	if err := b.board.CheckKernel(b.rf.res.KernelVersion, b.rf.res.KernelConfig); err != nil {
		return "", err
	}
	if err := b.buildInitramfs(ctx); err != nil {
		return "", err
	}
	var err error
	if b.boot, err = b.bootFiles(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("initramfs %d bytes, bootsel %d files, boot slot %d files", len(b.initrd), len(b.boot.bootsel), len(b.boot.slots[bootchain.A])), nil
}

// writeOutputs writes the manifest, the checksums and the SBOM, then
// moves the staging folder into place.
func (b *build) writeOutputs(ctx context.Context) (string, error) {
	mmdebstrap, err := debian.MmdebstrapVersion(ctx)
	if err != nil {
		return "", err
	}
	b.manifest = b.manifestOf(mmdebstrap)
	if err := writeManifest(b.staging, b.manifest); err != nil {
		return "", err
	}
	// The SPDX SBOM (NAME.spdx.json), listed in SHA256SUMS.
	if err := writeSBOM(b.staging, b.manifest, b.lock, b.board); err != nil {
		return "", err
	}
	if err := moveIntoPlace(b.staging, b.outDir); err != nil {
		return "", err
	}
	return b.outDir, nil
}

// moveIntoPlace replaces outDir with the finished staging folder. What
// outDir holds was checked by the load stage; it is checked again, for
// what was put there during the build.
func moveIntoPlace(staging, outDir string) error {
	if err := checkReplaceable(outDir); err != nil {
		return err
	}
	old := ""
	if _, err := os.Stat(outDir); err == nil {
		old = staging + ".old"
		if err := os.Rename(outDir, old); err != nil {
			return fmt.Errorf("move old output %s aside: %w", outDir, err)
		}
	}
	if err := os.Rename(staging, outDir); err != nil {
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

func orDefault(env string) string {
	if env == "" {
		return "default"
	}
	return env
}
