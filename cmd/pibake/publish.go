package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
)

func cmdPublish(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", "publish --repo DIR --channel NAME --key FILE [flags] BUILD_DIR", stdout, stderr)
	repo := fs.String("repo", "", "update repository folder (created if missing)")
	ch := fs.String("channel", "", "channel name, e.g. stable")
	key := fs.String("key", "", "signing key made by 'pibake keygen'")
	pwFile := fs.String("password-file", "", "password of an encrypted signing key")
	expires := fs.Duration("expires", 30*24*time.Hour, "how long devices accept this channel document")
	rollout := fs.Float64("rollout", 1, "fraction of devices that take this release, in (0, 1]")
	history := fs.Int("history", publish.DefaultHistory, "earlier releases to keep in "+channel.HistoryPath("NAME")+" and price the update from")
	serialFrom := fs.Uint64("serial-from", 0, "continue the channel's serial from N (the release gets N+1) instead of the current document's: when publish refuses a serial it did not record, or to recover after a leaked key's (docs/updates.md)")
	var prev []string
	fs.Func("previous-key", "public key file (.pub) whose channel documents the serial may continue from: the old key after a rotation (repeatable)", func(v string) error {
		prev = append(prev, v)
		return nil
	})
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	build, err := oneArg(fs, pos, "build output folder")
	if err != nil {
		return err
	}
	if *repo == "" || *ch == "" || *key == "" {
		fs.Usage()
		return fmt.Errorf("--repo, --channel and --key are required: %w", errUsage)
	}
	password := ""
	if *pwFile != "" {
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	k, err := channel.LoadPrivateKey(*key, password)
	if err != nil {
		return err
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
	res, err := publish.Publish(ctx, publish.Options{Repo: *repo, Channel: *ch, Build: build, Key: k, Expires: *expires, Rollout: *rollout, Now: time.Now(), PreviousKeys: previous, History: *history, SerialFrom: *serialFrom})
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	d := res.Document
	var ixBytes int64
	for _, c := range res.Chunks {
		ixBytes += c.Size
	}
	var patchBytes int64
	for _, p := range res.Patches {
		patchBytes += p.Size
	}
	fmt.Fprintf(stdout, "published %s %s for %s on channel %s: serial %d, expires %s, %d new bytes (chunk indexes: %d bytes, %d patches: %d bytes)\n",
		d.Image, d.Version, strings.Join(d.Boards, ","), d.Channel, d.Serial, d.Expires.Format(time.RFC3339), res.Uploaded, ixBytes, len(res.Patches), patchBytes)
	for _, c := range res.Delta {
		fmt.Fprintf(stdout, "a device running %s (serial %d) downloads %d bytes in %d requests (%.2f%% of the full %d bytes)",
			c.From, c.Serial, c.Bytes, c.Requests, c.Percent(), c.Full)
		if len(c.Patched) > 0 {
			fmt.Fprintf(stdout, "; %s as a patch", strings.Join(c.Patched, ", "))
		}
		if len(c.Missing) > 0 {
			fmt.Fprintf(stdout, "; its %s no longer in the repository, priced as a full download", strings.Join(c.Missing, ", "))
		}
		fmt.Fprintln(stdout)
	}
	if len(res.Delta) > 0 {
		fmt.Fprintf(stdout, "update costs written to %s\n", filepath.Join(*repo, filepath.FromSlash(channel.CostPath(*ch))))
	}
	return nil
}

func cmdBundle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bundle", "bundle --repo DIR --channel NAME OUT.tar", stdout, stderr)
	repo := fs.String("repo", "", "update repository folder")
	ch := fs.String("channel", "", "channel whose current release to pack")
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
	d, err := publish.Bundle(ctx, *repo, *ch, out)
	if err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bundled %s %s (channel %s, serial %d) into %s: %d bytes; on the device: pibake-updater install %s\n",
		d.Image, d.Version, d.Channel, d.Serial, out, st.Size(), filepath.Base(out))
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
	log := logger(stderr, false)
	// os.Root: no path, and no symlink inside the folder, leads out of it.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer root.Close()
	files := http.FileServerFS(root.FS())
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "read-only repository", http.StatusMethodNotAllowed)
			return
		}
		log.Info("request", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("range", r.Header.Get("Range")))
		// Names starting with a dot are publish's uploads in progress
		// (.upload-*) and atomic writes not yet renamed (.new): never
		// served, so no device reads a partial file.
		for _, part := range strings.Split(r.URL.Path, "/") {
			if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".new") {
				http.NotFound(w, r)
				return
			}
		}
		files.ServeHTTP(w, r)
	})}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "serving %s on http://%s/ (Ctrl-C stops)\n", dir, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
