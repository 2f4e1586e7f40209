package publish

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
)

// withBoard makes the build in dir a build for board (its manifest).
func withBoard(t *testing.T, dir, board string) string {
	t.Helper()
	return editManifest(t, dir, func(m *manifest.Manifest) { m.Board = board })
}

// editManifest changes a build's manifest with edit.
func editManifest(t *testing.T, dir string, edit func(*manifest.Manifest)) string {
	t.Helper()
	m, err := manifest.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	if _, err := manifest.Write(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

// files lists what a folder holds, recursively.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	return out
}

// TestPublishRefusesShortExpiry: a document already expired, or expiring
// before a device that polls once in a while has seen it, is refused
// before anything is written.
func TestPublishRefusesShortExpiry(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	build := fakeBuild(t, "1.0.0")
	for _, d := range []time.Duration{-5 * time.Hour, 0, time.Second, 23 * time.Hour} {
		repo := t.TempDir()
		_, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: build, Key: priv, Expires: d, Rollout: 1, Now: now})
		if err == nil || !strings.Contains(err.Error(), "--expires") {
			t.Errorf("--expires %s: %v", d, err)
		}
		if f := files(t, repo); len(f) > 0 {
			t.Errorf("--expires %s: the repository holds %v", d, f)
		}
	}
	if _, err := Publish(context.Background(), Options{Repo: t.TempDir(), Channel: "stable", Build: build, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Errorf("--expires 24h: %v", err)
	}
}

// TestPublishRefusesDowngrade: a version not newer than the channel's
// current one would get a higher serial, which every device installs.
func TestPublishRefusesDowngrade(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	pub := func(version string) error {
		_, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, version), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
		return err
	}
	if err := pub("1.10.0"); err != nil {
		t.Fatal(err)
	}
	before := files(t, repo)
	for _, v := range []string{"1.9.0", "1.10.0-rc1", "1.2.0"} {
		if err := pub(v); err == nil || !strings.Contains(err.Error(), "--allow-downgrade") {
			t.Errorf("%s after 1.10.0: %v", v, err)
		}
	}
	if after := files(t, repo); len(after) != len(before) {
		t.Errorf("refused publishes wrote %d files", len(after)-len(before))
	}
	if err := pub("1.10.1"); err != nil {
		t.Errorf("1.10.1 after 1.10.0: %v", err)
	}
}

// TestPublishRefusesOtherBoard: the channel's devices are of the board of
// its current release; they refuse a release of another.
func TestPublishRefusesOtherBoard(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Fatal(err)
	}
	_, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: withBoard(t, fakeBuild(t, "2.0.0"), "pi4"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now})
	if err == nil || !strings.Contains(err.Error(), "qemu") || !strings.Contains(err.Error(), "pi4") {
		t.Errorf("a pi4 build on a qemu channel: %v", err)
	}
	// Another channel starts with the board of its first build.
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "pi4", Build: withBoard(t, fakeBuild(t, "2.0.0"), "pi4"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Errorf("a pi4 build on a new channel: %v", err)
	}
}

// TestBundleRefusesExpired: a bundle of an expired document is refused by
// every device it is carried to.
func TestBundleRefusesExpired(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	// now is in the past: the document expired a day after it.
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "demo.tar")
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: time.Now()}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("bundle of an expired document: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("the bundle was written")
	}
}

// TestPublishGuardOverrides: each refusal has its override, and says so;
// a document that expires at once has none.
func TestPublishGuardOverrides(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	ctx := context.Background()
	repo := t.TempDir()
	o := func(build string) Options {
		return Options{Repo: repo, Channel: "stable", Build: build, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}
	}
	short := o(fakeBuild(t, "2.0.0"))
	short.Expires, short.Force = time.Minute, true
	if _, err := Publish(ctx, short); err != nil {
		t.Fatalf("--force --expires 1m: %v", err)
	}
	past := o(fakeBuild(t, "2.0.1"))
	past.Expires, past.Force = -time.Hour, true
	if _, err := Publish(ctx, past); !errors.Is(err, ErrExpires) {
		t.Errorf("--force --expires -1h: %v", err)
	}
	// The same version again with the same bytes is a re-publish (a new
	// rollout); with other bytes it is refused.
	if _, err := Publish(ctx, o(fakeBuild(t, "2.0.0"))); err != nil {
		t.Errorf("2.0.0 again: %v", err)
	}
	other := fakeBuildWith(t, "2.0.0", "tryboot")
	if _, err := Publish(ctx, o(other)); !errors.Is(err, ErrNotNewer) || !strings.Contains(err.Error(), "other bytes") {
		t.Errorf("2.0.0 with other bytes: %v", err)
	}
	down := o(fakeBuild(t, "1.0.0"))
	if _, err := Publish(ctx, down); !errors.Is(err, ErrNotNewer) || !strings.Contains(err.Error(), "serial") {
		t.Errorf("1.0.0 after 2.0.0: %v", err)
	}
	down.AllowDowngrade = true
	res, err := Publish(ctx, down)
	if err != nil || res.Document.Serial != 3 || res.Document.Version != "1.0.0" {
		t.Fatalf("--allow-downgrade: %v", err)
	}
	// The downgrade is the current release now: 2.0.0 is newer again.
	pi4 := o(withBoard(t, fakeBuild(t, "3.0.0"), "pi4"))
	if _, err := Publish(ctx, pi4); !errors.Is(err, ErrOtherBoard) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("pi4 on a qemu channel: %v", err)
	}
	pi4.Force = true
	if res, err := Publish(ctx, pi4); err != nil || res.Document.Boards[0] != "pi4" {
		t.Errorf("--force pi4 on a qemu channel: %v", err)
	}
}

// TestPublishDryRun: a dry run prices the update from each earlier
// release, and signs and writes nothing.
func TestPublishDryRun(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	ctx := context.Background()
	repo := t.TempDir()
	o := Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}
	if _, err := Publish(ctx, o); err != nil {
		t.Fatal(err)
	}
	sums := func() map[string]string {
		out := map[string]string{}
		for _, f := range files(t, repo) {
			if b, err := os.ReadFile(filepath.Join(repo, f)); err == nil {
				out[f] = sha256hex(b)
			}
		}
		return out
	}
	before := sums()
	o.Build, o.DryRun = fakeBuild(t, "2.0.0"), true
	dry, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if after := sums(); len(after) != len(before) {
		t.Errorf("the dry run changed the repository: %d files, %d before", len(after), len(before))
	} else {
		for f, s := range before {
			if after[f] != s {
				t.Errorf("the dry run changed %s", f)
			}
		}
	}
	if !dry.DryRun || dry.Document.Serial != 2 || len(dry.Delta) != 1 || dry.Delta[0].From != "1.0.0" || dry.Uploaded == 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	o.DryRun = false
	real, err := Publish(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if real.Delta[0].Bytes != dry.Delta[0].Bytes || real.Uploaded != dry.Uploaded || real.Document.Serial != dry.Document.Serial {
		t.Errorf("the dry run said %d bytes to download, %d uploaded, serial %d; publish did %d, %d, %d",
			dry.Delta[0].Bytes, dry.Uploaded, dry.Document.Serial, real.Delta[0].Bytes, real.Uploaded, real.Document.Serial)
	}
	// Refusals come before anything else in a dry run too.
	o.DryRun, o.Build = true, fakeBuild(t, "0.1.0")
	if _, err := Publish(ctx, o); !errors.Is(err, ErrNotNewer) {
		t.Errorf("dry run of a downgrade: %v", err)
	}
}

// TestBundleExpires: a bundle warns when its document has less than
// BundleWarn left, and --expires gives it a document of its own that
// devices accept, without changing the repository.
func TestBundleExpires(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	ctx := context.Background()
	repo := t.TempDir()
	if _, err := Publish(ctx, Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 72 * time.Hour, Rollout: 1, Now: now}); err != nil {
		t.Fatal(err)
	}
	docPath := filepath.Join(repo, channel.DocumentPath("stable"))
	published, _ := os.ReadFile(docPath)
	out := filepath.Join(t.TempDir(), "b.tar")
	res, err := Bundle(ctx, BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now})
	if err != nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "--expires") {
		t.Errorf("a bundle with 3 days left: %v, warnings %q", err, res.Warnings)
	}
	if _, err := Bundle(ctx, BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now, Expires: 365 * 24 * time.Hour}); err == nil {
		t.Error("--expires without a key")
	}
	_, otherKey, _ := minisign.GenerateKey(rand.Reader)
	if _, err := Bundle(ctx, BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now, Expires: 365 * 24 * time.Hour, Key: otherKey}); err == nil || !strings.Contains(err.Error(), "not signed by --key") {
		t.Errorf("--expires with another key: %v", err)
	}
	if _, err := Bundle(ctx, BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now, Expires: time.Hour, Key: priv}); !errors.Is(err, ErrExpires) {
		t.Errorf("--expires 1h: %v", err)
	}
	res, err = Bundle(ctx, BundleOptions{Repo: repo, Channel: "stable", Out: out, Now: now, Expires: 365 * 24 * time.Hour, Key: priv})
	if err != nil || len(res.Warnings) != 0 || !res.Resigned {
		t.Fatalf("--expires 1y: %v, %+v", err, res)
	}
	if after, _ := os.ReadFile(docPath); !bytes.Equal(after, published) {
		t.Error("bundle --expires changed the repository's document")
	}
	bu, err := install.OpenBundle(out)
	if err != nil {
		t.Fatal(err)
	}
	doc, sig := readBundled(t, bu, channel.DocumentPath("stable")), readBundled(t, bu, channel.SignaturePath(channel.DocumentPath("stable")))
	d, err := channel.Verify(doc, sig, channel.Check{Trusted: []minisign.PublicKey{pub}, Board: "qemu", Channel: "stable", Image: "demo", Now: now.Add(300 * 24 * time.Hour)})
	if err != nil || d.Serial != 1 {
		t.Errorf("a device 300 days later: %v", err)
	}
}

func readBundled(t *testing.T, bu *install.Bundle, path string) []byte {
	t.Helper()
	r, err := bu.Open(context.Background(), path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishEmptyManifest: an empty manifest.json is named, not a JSON
// decoder's "unexpected end".
func TestPublishEmptyManifest(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	build := fakeBuild(t, "1.0.0")
	os.WriteFile(filepath.Join(build, manifest.FileName), nil, 0o644)
	if _, err := Publish(context.Background(), Options{Repo: t.TempDir(), Channel: "stable", Build: build, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty manifest: %v", err)
	}
}

// TestBundleKeepsOtherFiles: bundle writes OUT only where nothing is, or
// over an earlier bundle; any other file there is the user's and stays.
func TestBundleKeepsOtherFiles(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 30 * 24 * time.Hour, Rollout: 1, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	precious := filepath.Join(dir, "thesis.tar")
	if err := os.WriteFile(precious, []byte("four years of work\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: precious, Now: time.Now()}); err == nil || !strings.Contains(err.Error(), "not a pibake bundle") {
		t.Errorf("bundle over another file: %v", err)
	}
	if b, _ := os.ReadFile(precious); string(b) != "four years of work\n" {
		t.Errorf("the file was overwritten (%d bytes now)", len(b))
	}
	if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: dir, Now: time.Now()}); err == nil {
		t.Error("bundle onto a folder was accepted")
	}
	again := filepath.Join(dir, "demo.tar")
	for i := 0; i < 2; i++ { // the second replaces the first
		if _, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: again, Now: time.Now()}); err != nil {
			t.Fatalf("bundle %d: %v", i+1, err)
		}
	}
}

// TestPublishProgress: each patch publish encodes is said as it starts and
// when it is done, on Options.Progress.
func TestPublishProgress(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	var progress bytes.Buffer
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, v), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now, Progress: &progress}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"encoding the patch of root from 1.0.0", "  patch of root from 1.0.0: "} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress has no %q:\n%s", want, progress.String())
		}
	}
}

// TestPublishRefusesChannelName: a channel name devices refuse is refused
// before anything is written (it used to fail at signing, after the
// artifacts were stored).
func TestPublishRefusesChannelName(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "Stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}); err == nil {
		t.Fatal("channel Stable was published")
	}
	if entries, _ := os.ReadDir(repo); len(entries) != 0 {
		t.Errorf("the refused publish wrote %d entries into the repository", len(entries))
	}
}

// withChannels records in a build's manifest the channels its devices may
// follow, as the builder does from the definition's updater section.
func withChannels(t *testing.T, dir string, channels ...string) string {
	t.Helper()
	return editManifest(t, dir, func(m *manifest.Manifest) { m.Channels = channels })
}

// TestPublishRefusesOtherChannel: a build's devices follow the channel
// its signed configuration names (updater.channel, or one of
// updater.channels through a device's override). Published to another
// channel, every device there installs it and from then on follows the
// build's channel: a preprod build published to prod moves the prod fleet
// onto preprod. Refused unless --force, before anything is written; a
// channel the build allows, and a build with no channel recorded (older
// manifests, images without an updater), pass.
func TestPublishRefusesOtherChannel(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	o := func(ch, build string) Options {
		return Options{Repo: repo, Channel: ch, Build: build, Key: priv, Expires: 24 * time.Hour, Rollout: 1, Now: now}
	}
	_, err := Publish(context.Background(), o("prod", withChannels(t, fakeBuild(t, "1.0.0"), "preprod")))
	if !errors.Is(err, ErrOtherChannel) || !strings.Contains(err.Error(), "preprod") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("a preprod build published to prod: %v", err)
	}
	if got := files(t, repo); len(got) != 0 {
		t.Errorf("the refused publish wrote %v", got)
	}
	if _, err := Publish(context.Background(), o("beta", withChannels(t, fakeBuild(t, "1.0.0"), "stable", "beta"))); err != nil {
		t.Errorf("a build published to one of its updater.channels: %v", err)
	}
	if _, err := Publish(context.Background(), o("old", fakeBuild(t, "1.0.0"))); err != nil {
		t.Errorf("a build whose manifest names no channel: %v", err)
	}
	forced := o("prod", withChannels(t, fakeBuild(t, "1.0.0"), "preprod"))
	forced.Force = true
	if _, err := Publish(context.Background(), forced); err != nil {
		t.Errorf("--force: %v", err)
	}
}
