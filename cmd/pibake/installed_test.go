package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/internal/deviceprog"
	"github.com/pibake/pibake/manifest"
)

// TestInstalledTool is the new user's path, on the real CLI: pibake
// installed by 'make install', then, in two folders outside any pibake
// checkout and with no Go on PATH, the README's own commands (its block
// with 'pibake init', read by quickStart: init, cd, lock, build) give the
// same bytes; publish and flash (onto a regular file of a card's size)
// take the build. Its one substitution: 'pibake lock' would ask Debian's
// archive (tests stay on loopback) and pin whatever it holds today, so
// the test writes the demo's lock instead (the template's debian section
// is the demo's), and the base comes from the cache the demo's builds
// fill (~/.cache/pibake).
func TestInstalledTool(t *testing.T) {
	if os.Getenv("PIBAKE_REAL") == "" {
		t.Skip("set PIBAKE_REAL=1 to install pibake and build real images with it (make test does)")
	}
	top, err := deviceprog.FindCheckout(".")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	start := time.Now()
	// The version the Makefile would take, read once: the checkout may
	// change while the test runs.
	version := deviceprog.CheckoutVersion(context.Background(), top)
	install := exec.Command("make", "-s", "-C", top, "install", "DESTDIR="+root, "PREFIX=/usr", "PIBAKE="+filepath.Join(tmp, "pibake"), "VERSION="+version)
	if b, err := install.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, b)
	}
	bin := filepath.Join(root, "usr", "bin")
	st, err := os.Stat(filepath.Join(bin, "pibake"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("make install: %s, pibake %d bytes", time.Since(start).Round(time.Second), st.Size())
	// No Go, no checkout: what an installed pibake finds on a user's machine.
	path := bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	pibake := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "pibake"), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+path)
		start := time.Now()
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pibake %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, b)
		}
		t.Logf("pibake %s: %s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
		return string(b)
	}
	lock, err := os.ReadFile(filepath.Join(top, "images", "demo.lock"))
	if err != nil {
		t.Fatal(err)
	}

	steps := quickStart(t, filepath.Join(top, "README.md"))
	var sums []map[string]string
	var fleet string
	for _, folder := range []string{"a", "b/deeper"} {
		dir := filepath.Join(tmp, folder)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			switch {
			case s[0] == "make": // make install: done above, into DESTDIR
			case s[0] == "cd":
				dir = filepath.Join(dir, s[1])
			case s[1] == "lock":
				if err := os.WriteFile(builder.LockPath(filepath.Join(dir, s[2])), lock, 0o644); err != nil {
					t.Fatal(err)
				}
			default:
				if out := strings.TrimSpace(pibake(dir, s[1:]...)); s[1] == "build" {
					t.Logf("%s", out)
				}
			}
		}
		fleet = dir
		sums = append(sums, sumDir(t, filepath.Join(fleet, "out", "my-fleet-pi4")))
	}
	for name, s := range sums[0] {
		if sums[1][name] != s {
			t.Errorf("%s differs between the two folders: %s and %s", name, s, sums[1][name])
		}
	}
	t.Logf("my-fleet.img sha256 %s in both folders", sums[0]["my-fleet.img"])

	// The agent in the image is what the checkout compiles: an image built
	// from the checkout at this commit has the same bytes.
	outDir := filepath.Join(fleet, "out", "my-fleet-pi4")
	m, err := manifest.Read(outDir)
	if err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(tmp, "pibake-updater")
	if _, err := deviceprog.Compile(context.Background(), top, deviceprog.Programs[deviceprog.Updater], agent); err != nil {
		t.Fatal(err)
	}
	if sum := sha256File(t, agent); m.Agent.SHA256 != sum || m.Agent.Version != version {
		t.Errorf("manifest agent %+v, the checkout's %s %s", m.Agent, version, sum)
	}

	pibake(fleet, "keygen", "--name", "fleet")
	repo := filepath.Join(tmp, "repo")
	pibake(fleet, "publish", "--repo", repo, "--channel", "test", "--key", filepath.Join("keys", "fleet.key"), filepath.Join("out", "my-fleet-pi4"))
	if _, err := os.Stat(filepath.Join(repo, "channels", "test.json")); err != nil {
		t.Errorf("publish wrote no channel document: %v", err)
	}
	card := filepath.Join(tmp, "card.img")
	if err := os.WriteFile(card, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(card, 4<<30); err != nil { // a 4 GiB card
		t.Fatal(err)
	}
	pibake(fleet, "flash", filepath.Join("out", "my-fleet-pi4", "my-fleet.img.zst"), card)
	if got := sha256Prefix(t, card, m.Disk.Size); got != m.Disk.SHA256 {
		t.Errorf("the card's first %d bytes: sha256 %s, the image's %s", m.Disk.Size, got, m.Disk.SHA256)
	}
}

// quickStart reads the README's block of commands that holds 'pibake
// init': each command (lines split at '&&', comments dropped) as its
// words. It must start with 'make install' and hold only what
// TestInstalledTool knows how to run: 'cd DIR' and pibake's init, lock
// and build; anything else fails the test, so the README cannot show a
// first step nobody runs.
func quickStart(t *testing.T, readme string) [][]string {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, part := range strings.Split(string(b), "```sh\n")[1:] {
		if body, _, ok := strings.Cut(part, "```"); ok && strings.Contains(body, "pibake init ") {
			block = body
			break
		}
	}
	if block == "" {
		t.Fatalf("%s: no sh block with 'pibake init'", readme)
	}
	var steps [][]string
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, cmd := range strings.Split(line, "&&") {
			if f := strings.Fields(cmd); len(f) > 0 {
				steps = append(steps, f)
			}
		}
	}
	for i, s := range steps {
		ok := false
		switch {
		case i == 0:
			ok = strings.Join(s, " ") == "make install"
		case s[0] == "cd":
			ok = len(s) == 2
		case s[0] == "pibake" && len(s) >= 2:
			ok = s[1] == "init" || s[1] == "build" || s[1] == "lock" && len(s) == 3
		}
		if !ok {
			t.Fatalf("%s: the quick start's command %q: TestInstalledTool does not run it (it runs make install first, then cd, pibake init, lock and build)", readme, strings.Join(s, " "))
		}
	}
	t.Logf("the README's quick start: %q", steps)
	return steps
}

func sumDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[string]string{}
	for _, e := range entries {
		sums[e.Name()] = sha256File(t, filepath.Join(dir, e.Name()))
	}
	return sums
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Prefix(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestQuickStartRunnable reads the README's quick start as
// TestInstalledTool does, without building: a README edit that adds a
// step the test cannot run, or drops init or build, fails at once.
func TestQuickStartRunnable(t *testing.T) {
	top, err := deviceprog.FindCheckout(".")
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, s := range quickStart(t, filepath.Join(top, "README.md")) {
		if s[0] == "pibake" {
			verbs = append(verbs, s[1])
		}
	}
	if got := strings.Join(verbs, " "); !strings.HasPrefix(got, "init") || !strings.HasSuffix(got, "build") {
		t.Errorf("the README's quick start runs pibake %s; want init first and a build last", got)
	}
}
