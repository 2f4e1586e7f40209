package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pibake/pibake/fleet"
)

// The environment variables pibake fleet reads when a flag is not given
// (for CI, where the password comes from a secret).
const (
	envBroker   = "PIBAKE_BROKER"
	envCA       = "PIBAKE_BROKER_CA"
	envUser     = "PIBAKE_BROKER_USER"
	envPassword = "PIBAKE_BROKER_PASSWORD"
	envPrefix   = "PIBAKE_BROKER_PREFIX"
)

func cmdFleet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "status":
		return cmdFleetStatus(ctx, args[1:], stdout, stderr)
	case len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help"):
		return cmdFleetStatus(ctx, args[:1], stdout, stderr)
	}
	_ = cmdFleetStatus(ctx, []string{"--help"}, stderr, io.Discard)
	return fmt.Errorf("fleet: want the subcommand status: %w", errUsage)
}

func cmdFleetStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fleet status", "fleet status [--json] [--channel C] [--version V] [--result R] [broker flags]", stdout, stderr)
	b := brokerFlags(fs)
	asJSON := fs.Bool("json", false, "print the devices as JSON")
	var f fleet.Filter
	fs.StringVar(&f.Channel, "channel", "", "only devices on this channel")
	fs.StringVar(&f.Version, "version", "", "only devices running this version")
	fs.StringVar(&f.Result, "result", "", "only devices whose last update ended so: "+strings.Join(fleet.Results, ", "))
	quiet := fs.Duration("quiet", fleet.DefaultQuiet, "stop when no report came for this long")
	maxWait := fs.Duration("max-wait", fleet.DefaultMaxWait, "stop after this long, however busy the broker")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("fleet status takes no arguments (got %q): %w", pos[0], errUsage)
	}
	if f.Result != "" && !slices.Contains(fleet.Results, f.Result) {
		return fmt.Errorf("--result %q: want one of %s: %w", f.Result, strings.Join(fleet.Results, ", "), errUsage)
	}
	broker, err := b.broker()
	if err != nil {
		return err
	}
	st, err := fleet.Collect(ctx, broker, fleet.StatusOptions{Quiet: *quiet, MaxWait: *maxWait})
	if err != nil {
		return fmt.Errorf("fleet status: %w", err)
	}
	st = f.Apply(st)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return fleet.Print(stdout, st, time.Now())
}

// brokerOptions are the flags that reach the broker as an operator.
type brokerOptions struct {
	url, ca, user, passwordFile, prefix *string
}

func brokerFlags(fs *flagSet) brokerOptions {
	return brokerOptions{
		url:          fs.String("broker", "", "the broker: tcp://HOST:1883 or ssl://HOST:8883 (default $"+envBroker+")"),
		ca:           fs.String("ca", "", "PEM file of the broker's CA (default $"+envCA+", else the system's)"),
		user:         fs.String("user", "", "the operator's user name at the broker (default $"+envUser+")"),
		passwordFile: fs.String("password-file", "", "a file holding the operator's password (default $"+envPassword+", the password itself)"),
		prefix:       fs.String("prefix", "", "the topic prefix (default $"+envPrefix+", else pibake)"),
	}
}

// broker is the flags, each taken from its environment variable when
// not given.
func (o brokerOptions) broker() (fleet.Broker, error) {
	or := func(flag *string, env string) string {
		if *flag != "" {
			return *flag
		}
		return os.Getenv(env)
	}
	b := fleet.Broker{URL: or(o.url, envBroker), CAFile: or(o.ca, envCA), Username: or(o.user, envUser), Prefix: or(o.prefix, envPrefix)}
	if b.URL == "" {
		return b, fmt.Errorf("no broker: give --broker tcp://HOST:1883 or ssl://HOST:8883, or set %s: %w", envBroker, errUsage)
	}
	switch {
	case *o.passwordFile != "":
		data, err := os.ReadFile(*o.passwordFile)
		if err != nil {
			return b, fmt.Errorf("--password-file: %w", err)
		}
		b.Password = strings.TrimRight(string(data), "\r\n")
	default:
		b.Password = os.Getenv(envPassword)
	}
	return b, nil
}
