package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

const usage = `pibake builds reproducible A/B Raspberry Pi appliance images.

Usage:
  pibake build   [flags] images/NAME.yaml   build a disk image (see 'pibake build -h')
  pibake lock    [flags] images/NAME.yaml   resolve and pin the Debian packages into images/NAME.lock
  pibake inspect [--json] IMAGE             show an image's layout and what each slot holds
  pibake run [--persist] [--forward H:G] IMAGE  boot a qemu-board image under QEMU
  pibake validate [--env ENV] images/NAME.yaml...  check definitions without building
  pibake keygen [--out DIR] [--name NAME]   make a key pair for signing update channels
  pibake publish --repo DIR --channel NAME --key FILE BUILD_DIR  add a build to an update repository
  pibake bundle --repo DIR --channel NAME OUT.tar  pack a channel's release into one file for offline install
  pibake serve [--addr 127.0.0.1:8080] DIR  serve an update repository over HTTP (for testing)
  pibake flash [--provision FILE] IMAGE DEVICE  write NAME.img(.zst) by its bmap to a card, verified
  pibake version                            print the version

Docs: README.md, docs/image-definition.md, docs/building.md, docs/flashing.md
`

// errUsage marks command-line mistakes (exit code 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// version is set at link time by the Makefile.
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given: %w", errUsage)
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "build":
		return cmdBuild(ctx, rest, stdout, stderr)
	case "lock":
		return cmdLock(ctx, rest, stdout, stderr)
	case "inspect":
		return cmdInspect(ctx, rest, stdout, stderr)
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "publish":
		return cmdPublish(ctx, rest, stdout, stderr)
	case "bundle":
		return cmdBundle(ctx, rest, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "flash":
		return cmdFlash(ctx, rest, stdout, stderr)
	case "keygen":
		return cmdKeygen(ctx, rest, stdout, stderr)
	case "validate":
		return cmdValidate(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "pibake", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: %w", cmd, errUsage)
}

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pibake %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags placed before or after the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%v: %w", err, errUsage)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func logger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}))
}

func oneArg(fs *flag.FlagSet, pos []string, what string) (string, error) {
	if len(pos) != 1 {
		fs.Usage()
		return "", fmt.Errorf("want exactly one %s, got %d (%s): %w", what, len(pos), strings.Join(pos, " "), errUsage)
	}
	return pos[0], nil
}
