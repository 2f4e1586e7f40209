package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/manifest"
)

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("build", "build [flags] images/NAME.yaml...", stdout, stderr)
	env := fs.String("env", "", "merge the overrides of this environment (test, preprod, prod, ...)")
	board := fs.String("board", "", "target board (default: the definition's first board)")
	out := fs.String("out", "", "output folder, for one definition: missing, empty or an earlier build's (default: out/NAME-BOARD, out/NAME-BOARD-ENV with --env)")
	cache := fs.String("cache", "", "cache folder for packages and bases (default: $PIBAKE_CACHE or ~/.cache/pibake)")
	src := fs.String("src", "", "compile the device programs (pibake-init, pibake-updater) from this pibake checkout instead of taking the ones built into pibake")
	verbose := fs.Bool("v", false, "verbose: log every command run")
	asJSON := fs.Bool("json", false, "print each build's result as a JSON object on stdout (folder, image, manifest, stage times); progress stays on stderr")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("no image definition given: %w", errUsage)
	}
	if *out != "" && len(pos) > 1 {
		return fmt.Errorf("--out names one folder and %d definitions were given: build them one at a time, or drop --out for out/NAME-BOARD each: %w", len(pos), errUsage)
	}
	for _, def := range pos {
		start := time.Now()
		res, err := builder.Build(ctx, builder.Options{Definition: def, Env: *env, Board: *board, OutDir: *out, CacheDir: *cache, Source: *src,
			Progress: stderr, Log: logger(stderr, *verbose)})
		if err != nil {
			return err
		}
		if *asJSON {
			if err := printBuildJSON(stdout, res, time.Since(start)); err != nil {
				return err
			}
			continue
		}
		m := res.Manifest
		fmt.Fprintf(stdout, "built %s %s for %s (env %s, agent %s) in %s\n  %s\n  sha256 %s\n", m.Image, m.Version, m.Board, m.Env, m.Agent.Version,
			time.Since(start).Round(100*time.Millisecond), res.Image, m.Disk.SHA256)
	}
	return nil
}

// buildJSON is what build --json prints for one build.
type buildJSON struct {
	OutDir   string              `json:"out_dir"`
	Image    string              `json:"image"`
	Seconds  float64             `json:"seconds"`
	Stages   []builder.StageTime `json:"stages"`
	Manifest *manifest.Manifest  `json:"manifest"`
}

func printBuildJSON(w io.Writer, res *builder.Result, took time.Duration) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(buildJSON{OutDir: res.OutDir, Image: res.Image, Seconds: took.Seconds(), Stages: res.Stages, Manifest: res.Manifest})
}
