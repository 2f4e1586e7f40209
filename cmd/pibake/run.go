package main

import (
	"bytes"
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
  pibake init    [--name NAME] DIR         write a new repository for an image (definition, overlay, Makefile, CI)
  pibake build   [flags] images/NAME.yaml   build a disk image (see 'pibake build -h')
  pibake lock    [flags] images/NAME.yaml   resolve and pin the Debian packages into images/NAME.lock
  pibake outdated [--json] images/NAME.yaml  list locked packages with newer versions (exit 3 if any)
  pibake inspect [--json] IMAGE             show an image's layout and what each slot holds
  pibake run [--persist] [--forward H:G] IMAGE  boot a qemu-board image under QEMU
  pibake validate [--env ENV] images/NAME.yaml...  check definitions without building
  pibake keygen [--out DIR] [--name NAME]   make a key pair for signing update channels
  pibake publish --repo DIR --channel NAME --key FILE [--dry-run] [--json] BUILD_DIR...  add a build to an update repository
  pibake rollout status|halt|resume|watch --repo DIR --channel NAME --key FILE  show, halt or resume a channel's rollout, or halt it when devices fail
  pibake bundle --repo DIR --channel NAME [--expires DUR --key FILE] OUT.tar  pack a channel's release into one file for offline install
  pibake provision check FILE...           check a first-boot provisioning file (pibake-provision.yaml,
                                          or Imager's user-data/network-config) before it goes on a card
  pibake fleet status [--json] [--channel C] [--version V] [--result R]  what each device reported
                                          to the team's MQTT broker (--broker, or $PIBAKE_BROKER)
  pibake serve [--addr 127.0.0.1:8080] DIR  serve an update repository over HTTP (for testing)
  pibake imager --base-url URL BUILD_DIR...  write a Raspberry Pi Imager repository (os_list JSON) for builds
  pibake flash [--provision FILE] IMAGE DEVICE  write NAME.img(.zst) by its bmap to a card, verified
  pibake boards [--json]                    list the boards pibake builds for
  pibake completion bash|zsh                print a shell completion script
  pibake help [VERB]                        print this, or what VERB does, an example and its flags
  pibake version                            print the version

'pibake help VERB' or 'pibake VERB --help' prints what a verb does, an example and its flags.
Docs: README.md, docs/image-definition.md, docs/building.md, docs/releases.md, docs/provisioning.md, docs/flashing.md, docs/fleet.md
`

// errUsage marks command-line mistakes (exit code 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// version is set at link time by the Makefile.
var version = "dev"

// command is one verb of pibake.
type command struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is every verb; 'pibake VERB --help' prints each one's usage.
// It is set by init: help and completion read it.
var commands []command

func init() {
	commands = []command{
		{"init", cmdInit},
		{"build", cmdBuild},
		{"lock", cmdLock},
		{"outdated", cmdOutdated},
		{"inspect", cmdInspect},
		{"run", cmdRun},
		{"validate", cmdValidate},
		{"keygen", cmdKeygen},
		{"publish", cmdPublish},
		{"rollout", cmdRollout},
		{"bundle", cmdBundle},
		{"serve", cmdServe},
		{"imager", cmdImager},
		{"provision", cmdProvision},
		{"fleet", cmdFleet},
		{"flash", cmdFlash},
		{"boards", cmdBoards},
		{"completion", cmdCompletion},
		{"help", cmdHelp},
		{"version", cmdVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given: %w", errUsage)
	}
	name, rest := args[0], args[1:]
	switch name {
	case "--version":
		name = "version"
	case "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	for _, c := range commands {
		if c.name == name {
			err := c.run(ctx, rest, stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return nil // the usage went to stdout
			}
			return err
		}
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q: %w", name, errUsage)
}

func cmdVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stdout, stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return fmt.Errorf("version takes no arguments: %w", errUsage)
	}
	fmt.Fprintln(stdout, "pibake", version)
	return nil
}

// flagSet is a verb's flags. What the flag package prints while parsing
// (an error, the usage) is held back until parse knows where it goes:
// the usage asked for with -h or --help to stdout, anything else to
// stderr.
type flagSet struct {
	*flag.FlagSet
	stdout, stderr io.Writer
	held           bytes.Buffer
}

func newFlags(name, synopsis string, stdout, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout, stderr: stderr}
	fs.SetOutput(stderr)
	fs.FlagSet.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pibake %s\n\n", synopsis)
		describe(fs.Output(), name)
		fmt.Fprintln(fs.Output(), "Flags:")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags placed before or after the positional arguments.
// -h or --help returns flag.ErrHelp after printing the usage to stdout
// (run turns that into exit status 0).
func parse(fs *flagSet, args []string) ([]string, error) {
	fs.held.Reset()
	fs.SetOutput(&fs.held)
	defer fs.SetOutput(fs.stderr)
	var pos []string
	for {
		if err := fs.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				_, _ = fs.stdout.Write(fs.held.Bytes())
				return nil, err
			}
			_, _ = fs.stderr.Write(fs.held.Bytes())
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

func oneArg(fs *flagSet, pos []string, what string) (string, error) {
	if len(pos) != 1 {
		fs.Usage()
		return "", fmt.Errorf("want exactly one %s, got %d (%s): %w", what, len(pos), strings.Join(pos, " "), errUsage)
	}
	return pos[0], nil
}
