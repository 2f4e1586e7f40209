package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/pibake/pibake/builder"
)

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", "build [flags] images/NAME.yaml", stdout, stderr)
	env := fs.String("env", "", "merge the overrides of this environment (test, preprod, prod, ...)")
	board := fs.String("board", "", "target board (default: the definition's first board)")
	out := fs.String("out", "", "output folder (default: out/NAME)")
	cache := fs.String("cache", "", "cache folder for packages and bases (default: $PIBAKE_CACHE or ~/.cache/pibake)")
	verbose := fs.Bool("v", false, "verbose: log every command run")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	def, err := oneArg(fs, pos, "image definition")
	if err != nil {
		return err
	}
	if *out == "" {
		*out = filepath.Join("out", strings.TrimSuffix(filepath.Base(def), filepath.Ext(def)))
	}
	start := time.Now()
	res, err := builder.Build(ctx, builder.Options{Definition: def, Env: *env, Board: *board, OutDir: *out, CacheDir: *cache,
		Progress: stderr, Log: logger(stderr, *verbose)})
	if err != nil {
		return err
	}
	m := res.Manifest
	fmt.Fprintf(stdout, "built %s %s for %s (env %s) in %s\n  %s\n  sha256 %s\n", m.Image, m.Version, m.Board, m.Env,
		time.Since(start).Round(100*time.Millisecond), res.Image, m.Disk.SHA256)
	return nil
}
