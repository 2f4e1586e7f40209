package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
)

// cmdRollout: pibake rollout status|halt|resume|watch shows a channel's
// rollout, halts or resumes it (re-signing the channel's document), or
// follows the devices' reports and halts it when too many fail.
func cmdRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	verbs := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"status": rolloutStatus, "halt": rolloutHalt, "resume": rolloutResume, "watch": rolloutWatch,
	}
	if len(args) > 0 {
		if f, ok := verbs[args[0]]; ok {
			return f(ctx, args[1:], stdout, stderr)
		}
	}
	fs := newFlags("rollout", "rollout status|halt|resume|watch --repo DIR --channel NAME [flags]", stdout, stderr)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	fs.Usage()
	return fmt.Errorf("rollout: want status, halt, resume or watch: %w", errUsage)
}

// rolloutFlags are the flags every rollout verb shares.
type rolloutFlags struct {
	fs                      *flagSet
	repo, ch, key, pw, pubF *string
	prev                    []string
}

func newRolloutFlags(verb string, stdout, stderr io.Writer) *rolloutFlags {
	synopsis := "rollout " + verb + " --repo DIR --channel NAME --key FILE [flags]"
	if verb == "status" {
		synopsis = "rollout status --repo DIR --channel NAME --key FILE|--public-key FILE [--json]"
	}
	f := &rolloutFlags{fs: newFlags("rollout "+verb, synopsis, stdout, stderr)}
	f.repo = f.fs.String("repo", "", "update repository folder")
	f.ch = f.fs.String("channel", "", "channel name, e.g. stable")
	f.key = f.fs.String("key", "", "the channel's signing key (made by 'pibake keygen')")
	f.pw = f.fs.String("password-file", "", "password of an encrypted signing key")
	f.pubF = f.fs.String("public-key", "", "status only: read the channel with this public key (.pub) instead of --key")
	f.fs.Func("previous-key", "public key file (.pub) whose channel documents are also accepted: the old key after a rotation (repeatable)", func(v string) error {
		f.prev = append(f.prev, v)
		return nil
	})
	return f
}

// parse parses args and checks the shared flags; needKey is false for a
// verb that may read with a public key only.
func (f *rolloutFlags) parse(args []string, needKey bool) error {
	pos, err := parse(f.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		f.fs.Usage()
		return fmt.Errorf("unexpected arguments %q: %w", pos, errUsage)
	}
	if *f.repo == "" || *f.ch == "" || (*f.key == "" && (needKey || *f.pubF == "")) {
		f.fs.Usage()
		return fmt.Errorf("--repo, --channel and --key are required: %w", errUsage)
	}
	return nil
}

// options are the publish options of the parsed flags, with the key.
func (f *rolloutFlags) options() (publish.RolloutOptions, error) {
	o := publish.RolloutOptions{Repo: *f.repo, Channel: *f.ch, Now: time.Now()}
	k, err := loadKey(*f.key, *f.pw)
	if err != nil {
		return o, err
	}
	o.Key = k
	for _, p := range f.prev {
		pk, err := readPublicKey(p)
		if err != nil {
			return o, fmt.Errorf("--previous-key: %w", err)
		}
		o.PreviousKeys = append(o.PreviousKeys, pk)
	}
	return o, nil
}

// keys are the public keys the channel's document may be signed by.
func (f *rolloutFlags) keys() ([]minisign.PublicKey, error) {
	var keys []minisign.PublicKey
	if *f.key != "" {
		o, err := f.options()
		if err != nil {
			return nil, err
		}
		pub, _ := o.Key.Public().(minisign.PublicKey)
		return append(append(keys, pub), o.PreviousKeys...), nil
	}
	for _, p := range append([]string{*f.pubF}, f.prev...) {
		pk, err := readPublicKey(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, pk)
	}
	return keys, nil
}

func readPublicKey(path string) (minisign.PublicKey, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return minisign.PublicKey{}, err
	}
	pk, err := channel.ParsePublicKey(string(text))
	if err != nil {
		return pk, fmt.Errorf("%s: %w", path, err)
	}
	return pk, nil
}

// rolloutState is what rollout status prints with --json.
type rolloutState struct {
	Document  *channel.Document `json:"document"`
	RolloutAt time.Time         `json:"rollout_at"`
	Rollout   float64           `json:"rollout_now"` // the fraction at RolloutAt, by this host's clock
}

func rolloutStatus(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newRolloutFlags("status", stdout, stderr)
	asJSON := f.fs.Bool("json", false, "print the document and the fraction now as JSON")
	if err := f.parse(args, false); err != nil {
		return err
	}
	keys, err := f.keys()
	if err != nil {
		return fmt.Errorf("rollout status: %w", err)
	}
	d, err := publish.Current(*f.repo, *f.ch, keys)
	if err != nil {
		return fmt.Errorf("rollout status: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if *asJSON {
		return writeJSON(stdout, rolloutState{Document: d, RolloutAt: now, Rollout: d.RolloutAt(now)})
	}
	printRollout(stdout, d, now)
	return nil
}

// printRollout says what a channel offers to whom, at now.
func printRollout(w io.Writer, d *channel.Document, now time.Time) {
	fmt.Fprintf(w, "channel %s: %s %s for %s, serial %d, expires %s\n", d.Channel, d.Image, d.Version, strings.Join(d.Boards, ","), d.Serial, d.Expires.UTC().Format(time.RFC3339))
	if len(d.Waves) > 0 {
		fmt.Fprintf(w, "waves: %s\n", publish.FormatWaves(d.Waves))
	}
	fmt.Fprintf(w, "rollout now: %s%% of the devices (at %s, this host's clock)\n", strconv.FormatFloat(d.RolloutAt(now)*100, 'f', -1, 64), now.Format(time.RFC3339))
	if d.Halted {
		fmt.Fprintf(w, "halted: devices that have not committed %s %s do not start it; those that did keep it ('pibake rollout resume' to go on)\n", d.Image, d.Version)
	} else {
		fmt.Fprintln(w, "halted: no")
	}
}

func rolloutHalt(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return setHalted(args, stdout, stderr, "halt", publish.Halt)
}

func rolloutResume(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return setHalted(args, stdout, stderr, "resume", publish.Resume)
}

func setHalted(args []string, stdout, stderr io.Writer, verb string, act func(publish.RolloutOptions) (*channel.Document, bool, error)) error {
	f := newRolloutFlags(verb, stdout, stderr)
	if err := f.parse(args, true); err != nil {
		return err
	}
	o, err := f.options()
	if err != nil {
		return fmt.Errorf("rollout %s: %w", verb, err)
	}
	d, changed, err := act(o)
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(stdout, "channel %s serial %d is already %s: nothing signed\n", d.Channel, d.Serial, map[bool]string{true: "halted", false: "not halted"}[d.Halted])
	} else {
		fmt.Fprintf(stdout, "signed channel %s serial %d (%s)\n", d.Channel, d.Serial, map[bool]string{true: "halted", false: "resumed"}[d.Halted])
	}
	printRollout(stdout, d, o.Now.UTC().Truncate(time.Second))
	return nil
}

// parsePercent reads "20%" or "20" as 0.2.
func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || !(v > 0 && v <= 100) {
		return 0, fmt.Errorf("%q: want a percent above 0 and at most 100, e.g. 20%%", s)
	}
	return v / 100, nil
}

func rolloutWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newRolloutFlags("watch", stdout, stderr)
	fs := f.fs
	var b fleet.Broker
	fs.StringVar(&b.URL, "broker", "", "the team's MQTT broker: tcp://HOST:1883, or ssl://HOST:8883 for TLS")
	fs.StringVar(&b.CAFile, "broker-ca", "", "PEM file of the CA the broker's TLS certificate chains to (default: the system's)")
	fs.StringVar(&b.Username, "broker-user", "", "broker user name (one with read access to the devices' topics)")
	brokerPW := fs.String("broker-password-file", "", "file holding the broker user's password")
	fs.StringVar(&b.Prefix, "prefix", "", "topic prefix of the reports (default pibake)")
	var brake fleet.Brake
	fs.IntVar(&brake.MaxFailures, "max-failures", 0, "halt when this many devices have failed the release (0: no count threshold)")
	fs.Func("max-failure-rate", "halt when this percent of finished attempts failed, after --min-attempts, e.g. 20%", func(v string) (err error) {
		brake.MaxFailureRate, err = parsePercent(v)
		return err
	})
	fs.IntVar(&brake.MinAttempts, "min-attempts", 10, "finished attempts (committed, rolled back or failed) before --max-failure-rate is judged")
	since := fs.Uint64("since-serial", 0, "count attempts at this serial and later (default: the channel document's serial when the watch starts)")
	once := fs.Bool("once", false, "exit after the first halt (a CI job) instead of watching on for the next release")
	if err := f.parse(args, true); err != nil {
		return err
	}
	if b.URL == "" {
		fs.Usage()
		return fmt.Errorf("--broker is required: %w", errUsage)
	}
	if err := brake.Validate(); err != nil {
		return fmt.Errorf("rollout watch: %v: %w", err, errUsage)
	}
	if *brokerPW != "" {
		pw, err := os.ReadFile(*brokerPW)
		if err != nil {
			return fmt.Errorf("rollout watch: --broker-password-file: %w", err)
		}
		b.Password = strings.TrimRight(string(pw), "\r\n")
	}
	o, err := f.options()
	if err != nil {
		return fmt.Errorf("rollout watch: %w", err)
	}
	keys, err := f.keys()
	if err != nil {
		return fmt.Errorf("rollout watch: %w", err)
	}
	return fleet.Watch(ctx, fleet.WatchOptions{
		Broker: b, Brake: brake, Channel: *f.ch, Since: *since, Once: *once, Out: stdout,
		Current: func() (*channel.Document, error) { return publish.Current(*f.repo, *f.ch, keys) },
		Halt: func() (*channel.Document, error) {
			o.Now = time.Now()
			d, _, err := publish.Halt(o)
			return d, err
		},
	})
}
