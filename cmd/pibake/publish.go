package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/internal/reposerve"
	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
)

func cmdPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", "publish --repo DIR --channel NAME --key FILE [flags] BUILD_DIR...", stdout, stderr)
	repo := fs.String("repo", "", "update repository folder (created if missing)")
	ch := fs.String("channel", "", "channel name, e.g. stable")
	key := fs.String("key", "", "signing key made by 'pibake keygen'")
	pwFile := fs.String("password-file", "", "password of an encrypted signing key")
	expires := fs.Duration("expires", 30*24*time.Hour, fmt.Sprintf("how long devices accept this channel document (at least %s unless --force)", publish.MinExpires))
	rollout := fs.Float64("rollout", 1, "fraction of devices that take this release, in (0, 1]")
	var waves []publish.WaveSpec
	fs.Func("waves", "widen the rollout on schedule, instead of --rollout: "+publish.WavesSyntax+" (docs/fleet.md)", func(v string) (err error) {
		waves, err = publish.ParseWaves(v)
		return err
	})
	history := fs.Int("history", publish.DefaultHistory, "earlier releases to keep in "+channel.HistoryPath("NAME")+" and price the update from")
	serialFrom := fs.Uint64("serial-from", 0, "continue the channel's serial from N (the release gets N+1) instead of the current document's: when publish refuses a serial it did not record, or to recover after a leaked key's (docs/updates.md)")
	force := fs.Bool("force", false, fmt.Sprintf("publish an --expires shorter than %s, a build of another board than the channel's current release (the channel's devices of the old board then get no update), or a build whose devices follow another channel (the channel's devices then follow that one)", publish.MinExpires))
	downgrade := fs.Bool("allow-downgrade", false, "publish a version not newer than the channel's current one: it gets the next serial, and every device installs it (docs/updates.md)")
	dryRun := fs.Bool("dry-run", false, "check the build and the channel and print what each earlier release would download; sign and write nothing")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	var prev []string
	fs.Func("previous-key", "public key file (.pub) whose channel documents the serial may continue from: the old key after a rotation (repeatable)", func(v string) error {
		prev = append(prev, v)
		return nil
	})
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		fs.Usage()
		return fmt.Errorf("want a build output folder (several, one per board, for a release of several boards): %w", errUsage)
	}
	if *repo == "" || *ch == "" || *key == "" {
		fs.Usage()
		return fmt.Errorf("--repo, --channel and --key are required: %w", errUsage)
	}
	if waves != nil && *rollout != 1 {
		fs.Usage()
		return fmt.Errorf("give --rollout or --waves, not both (--waves sets the first fraction): %w", errUsage)
	}
	k, err := loadKey(*key, *pwFile)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var previous []minisign.PublicKey
	for _, p := range prev {
		text, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("publish: --previous-key: %w", err)
		}
		pk, err := channel.ParsePublicKey(string(text))
		if err != nil {
			return fmt.Errorf("publish: --previous-key %s: %w", p, err)
		}
		previous = append(previous, pk)
	}
	res, err := publish.Publish(ctx, publish.Options{Repo: *repo, Channel: *ch, Builds: pos, Key: k, Expires: *expires, Rollout: *rollout, Waves: waves, Now: time.Now(), PreviousKeys: previous, History: *history, SerialFrom: *serialFrom,
		Force: *force, AllowDowngrade: *downgrade, DryRun: *dryRun, Progress: stderr})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *asJSON {
		return writeJSON(stdout, res)
	}
	printPublished(stdout, res, *repo)
	return nil
}

// loadKey reads a signing key, with the password in pwFile ("" for none).
func loadKey(path, pwFile string) (minisign.PrivateKey, error) {
	password := ""
	if pwFile != "" {
		var err error
		if password, err = readPassword(pwFile); err != nil {
			return minisign.PrivateKey{}, err
		}
	}
	return channel.LoadPrivateKey(path, password)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printPublished says what publish did (or, in a dry run, would do), and
// what each earlier release downloads.
func printPublished(stdout io.Writer, res *publish.Result, repo string) {
	d := res.Document
	var ixBytes int64
	for _, c := range res.Chunks {
		ixBytes += c.Size
	}
	var patchBytes int64
	for _, p := range res.Patches {
		patchBytes += p.Size
	}
	verb, downloads := "published", "downloads"
	if res.DryRun {
		verb, downloads = "dry run, nothing signed or written: would publish", "would download"
	}
	fmt.Fprintf(stdout, "%s %s %s for %s on channel %s: serial %d, expires %s, %d new bytes (chunk indexes: %d bytes, %d patches: %d bytes)\n",
		verb, d.Image, d.Version, strings.Join(d.Boards, ","), d.Channel, d.Serial, d.Expires.Format(time.RFC3339), res.Uploaded, ixBytes, len(res.Patches), patchBytes)
	if len(d.Waves) > 0 {
		fmt.Fprintf(stdout, "waves: %s (by each device's clock; 'pibake rollout status' shows the fraction now)\n", publish.FormatWaves(d.Waves))
	}
	for _, c := range res.Delta {
		board := ""
		if c.Board != "" {
			board = " " + c.Board
		}
		fmt.Fprintf(stdout, "a%s device running %s (serial %d) %s %d bytes in %d requests (%.2f%% of the full %d bytes)",
			board, c.From, c.Serial, downloads, c.Bytes, c.Requests, c.Percent(), c.Full)
		if len(c.Patched) > 0 {
			fmt.Fprintf(stdout, "; %s as a patch", strings.Join(c.Patched, ", "))
		}
		if len(c.Missing) > 0 {
			fmt.Fprintf(stdout, "; its %s no longer in the repository, priced as a full download", strings.Join(c.Missing, ", "))
		}
		fmt.Fprintln(stdout)
	}
	if len(res.Delta) > 0 && !res.DryRun {
		fmt.Fprintf(stdout, "update costs written to %s\n", filepath.Join(repo, filepath.FromSlash(channel.CostPath(d.Channel))))
	}
}

func cmdBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bundle", "bundle --repo DIR --channel NAME [--expires DURATION --key FILE] OUT.tar", stdout, stderr)
	repo := fs.String("repo", "", "update repository folder")
	ch := fs.String("channel", "", "channel whose current release to pack")
	expires := fs.Duration("expires", 0, "give the bundle a document of its own that devices accept this long (signed with --key; the repository is not changed); default: the published document, which devices refuse after it expires")
	key := fs.String("key", "", "the channel's signing key, for --expires")
	pwFile := fs.String("password-file", "", "password of an encrypted signing key")
	force := fs.Bool("force", false, fmt.Sprintf("allow an --expires shorter than %s", publish.MinExpires))
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	out, err := oneArg(fs, pos, "output file")
	if err != nil {
		return err
	}
	if *repo == "" || *ch == "" {
		fs.Usage()
		return fmt.Errorf("--repo and --channel are required: %w", errUsage)
	}
	o := publish.BundleOptions{Repo: *repo, Channel: *ch, Out: out, Now: time.Now(), Expires: *expires, Force: *force}
	if (*expires != 0) != (*key != "") {
		fs.Usage()
		return fmt.Errorf("--expires and --key go together (the bundle's own document is signed with the key): %w", errUsage)
	}
	if *key != "" {
		if o.Key, err = loadKey(*key, *pwFile); err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
	}
	res, err := publish.Bundle(ctx, o)
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *asJSON {
		return writeJSON(stdout, res)
	}
	d := res.Document
	fmt.Fprintf(stdout, "bundled %s %s (channel %s, serial %d) into %s: %d bytes; devices accept it until %s; on the device: pibake-updater install %s\n",
		d.Image, d.Version, d.Channel, d.Serial, out, res.Size, d.Expires.UTC().Format(time.RFC3339), filepath.Base(out))
	return nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve [--addr 127.0.0.1:8080] DIR", stdout, stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	dir, err := oneArg(fs, pos, "repository folder")
	if err != nil {
		return err
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("serve: %s is not a folder", dir)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// os.Root: no path, and no symlink inside the folder, leads out of it.
	root, err := os.OpenRoot(dir)
	if err != nil {
		ln.Close()
		return fmt.Errorf("serve: %w", err)
	}
	defer root.Close()
	srv := reposerve.New(root.FS(), logger(stderr, false), reposerve.DefaultLimits)
	fmt.Fprintf(stdout, "serving %s on http://%s/ (Ctrl-C stops)\n", dir, ln.Addr())
	return reposerve.Serve(ctx, srv, ln)
}
