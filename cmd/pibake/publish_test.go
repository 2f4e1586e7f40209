package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/publish"
)

// smallBuild writes a build output folder of version for board: the
// image of smallImage, its root slot holding rootfs, and its manifest.
func smallBuild(t *testing.T, version, board, rootfs string) string {
	t.Helper()
	dir := t.TempDir()
	img, _ := smallImage(t, dir)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	lay, _, err := inspect.Layout(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	root, _ := lay.Part(layout.RootA)
	if _, err := f.WriteAt([]byte(rootfs), root.Offset); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data, _ := os.ReadFile(img)
	sum := sha256.Sum256(data)
	m := manifest.Manifest{Format: manifest.Format, Image: "t", Version: version, Board: board, Bootloader: "uboot",
		Disk: manifest.Disk{File: "t.img", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}, Rootfs: manifest.Rootfs{Size: int64(len(rootfs))}}
	if _, err := manifest.Write(dir, &m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPublishGuardsCLI(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd("keygen", "--out", dir, "--name", "fleet"); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "fleet.key")
	repo := filepath.Join(dir, "repo")
	v1 := smallBuild(t, "1.0.0", "pi4", "root of 1.0.0")
	pub := func(args ...string) (string, string, error) {
		return runCmd(append([]string{"publish", "--repo", repo, "--channel", "stable", "--key", key}, args...)...)
	}
	for _, exp := range []string{"-5h", "1s"} {
		if _, _, err := pub("--expires", exp, v1); err == nil || !strings.Contains(err.Error(), "--expires") {
			t.Errorf("--expires %s: %v", exp, err)
		}
		if _, err := os.Stat(repo); err == nil {
			t.Errorf("--expires %s: the repository was written", exp)
		}
	}
	if _, _, err := pub(v1); err != nil {
		t.Fatal(err)
	}
	// A dry run of 2.0.0 prints what 1.0.0's devices download, as JSON,
	// and leaves the channel as it was.
	doc := filepath.Join(repo, "channels", "stable.json")
	before, _ := os.ReadFile(doc)
	v2 := smallBuild(t, "2.0.0", "pi4", "root of 2.0.0")
	out, _, err := pub("--dry-run", "--json", v2)
	if err != nil {
		t.Fatal(err)
	}
	var res publish.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || !res.DryRun || res.Document.Serial != 2 || len(res.Delta) != 1 || res.Delta[0].From != "1.0.0" {
		t.Errorf("dry run: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(doc); string(after) != string(before) {
		t.Error("the dry run changed the channel")
	}
	out, _, err = pub("--dry-run", v2)
	if err != nil || !strings.Contains(out, "dry run") || !strings.Contains(out, "a device running 1.0.0 (serial 1) would download") {
		t.Errorf("dry run: %v\n%s", err, out)
	}
	// An older version, and another board, are refused; their flags
	// let them through.
	if _, _, err := pub(smallBuild(t, "0.9.0", "pi4", "root of 0.9.0")); err == nil || !strings.Contains(err.Error(), "--allow-downgrade") {
		t.Errorf("0.9.0 after 1.0.0: %v", err)
	}
	if _, _, err := pub(smallBuild(t, "2.0.0", "pi3", "root of 2.0.0 for pi3")); err == nil || !strings.Contains(err.Error(), "pi3") {
		t.Errorf("a pi3 build on a pi4 channel: %v", err)
	}
	if out, _, err := pub("--allow-downgrade", smallBuild(t, "0.9.0", "pi4", "root of 0.9.0")); err != nil || !strings.Contains(out, "serial 2") {
		t.Errorf("--allow-downgrade: %v %s", err, out)
	}
}

// TestBundleExpiresCLI: bundle warns of a document that dies soon, and
// --expires with --key gives the bundle one of its own.
func TestBundleExpiresCLI(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd("keygen", "--out", dir, "--name", "fleet"); err != nil {
		t.Fatal(err)
	}
	key, repo := filepath.Join(dir, "fleet.key"), filepath.Join(dir, "repo")
	if _, _, err := runCmd("publish", "--repo", repo, "--channel", "stable", "--key", key, "--expires", "48h", smallBuild(t, "1.0.0", "pi4", "root")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "b.tar")
	if _, stderr, err := runCmd("bundle", "--repo", repo, "--channel", "stable", out); err != nil || !strings.Contains(stderr, "warning: the bundle's channel document expires") {
		t.Errorf("a bundle with 2 days left: %v, stderr %q", err, stderr)
	}
	if _, _, err := runCmd("bundle", "--repo", repo, "--channel", "stable", "--expires", "8760h", out); err == nil || exitCode(err) != 2 {
		t.Errorf("--expires without --key: %v", err)
	}
	stdout, stderr, err := runCmd("bundle", "--repo", repo, "--channel", "stable", "--expires", "8760h", "--key", key, out)
	if err != nil || stderr != "" || !strings.Contains(stdout, "devices accept it until") {
		t.Errorf("--expires 8760h: %v\n%s%s", err, stdout, stderr)
	}
}
