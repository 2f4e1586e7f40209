package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/internal/deviceprog"
	"github.com/pibake/pibake/internal/hosttool"
)

// TestDeb is 'make deb' as docs/install.md shows it: two runs give the
// same bytes, dpkg-deb reads the package (its fields, its files owned by
// root with one time), the pibake unpacked from it runs, and a file that
// is not a pibake package is never replaced by one. The package
// is compressed with gzip here (DEB_COMPRESSION): xz on one thread costs
// about half a minute more per run on the 2-core machine, and the bytes
// it packs are the same.
func TestDeb(t *testing.T) {
	if os.Getenv("PIBAKE_REAL") == "" {
		t.Skip("set PIBAKE_REAL=1 to build pibake with make and package it (make test does)")
	}
	dpkgDeb := hosttool.Need(t, "dpkg-deb", "dpkg")
	hosttool.Need(t, "strip", "binutils")
	top, err := deviceprog.FindCheckout(".")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// The version the Makefile would take, read once, as TestInstalledTool does.
	version := deviceprog.CheckoutVersion(context.Background(), top)
	var debs []string
	for _, run := range []string{"a", "b"} {
		deb := filepath.Join(tmp, run, "pibake.deb")
		start := time.Now()
		cmd := exec.Command("make", "-s", "-C", top, "deb", "PIBAKE="+filepath.Join(tmp, "pibake"), "VERSION="+version, "DEB="+deb)
		cmd.Env = append(os.Environ(), "DEB_COMPRESSION=gzip")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make deb: %v\n%s", err, b)
		}
		t.Logf("make deb (%s): %s", run, time.Since(start).Round(100*time.Millisecond))
		debs = append(debs, deb)
	}
	if a, b := sha256File(t, debs[0]), sha256File(t, debs[1]); a != b {
		t.Fatalf("two make deb of one commit differ: sha256 %s and %s", a, b)
	} else {
		t.Logf("both packages: sha256 %s", a)
	}
	deb := debs[0]

	out := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	debVersion := strings.TrimSpace(out(filepath.Join(top, "scripts", "deb.sh"), "debversion", version))
	info := out(dpkgDeb, "--info", deb)
	for _, want := range []string{"Package: pibake\n", "Version: " + debVersion + "\n", "Depends: mmdebstrap, squashfs-tools-ng, apt, debian-archive-keyring"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb --info lacks %q:\n%s", want, info)
		}
	}
	contents := out(dpkgDeb, "--contents", deb)
	for _, want := range []string{"./usr/bin/pibake", "./usr/share/bash-completion/completions/pibake", "./usr/share/zsh/vendor-completions/_pibake", "./usr/share/doc/pibake/docs/install.md", "./usr/share/doc/pibake/copyright"} {
		if !strings.Contains(contents, " "+want+"\n") {
			t.Errorf("dpkg-deb --contents lacks %s:\n%s", want, contents)
		}
	}
	times := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(contents), "\n") {
		f := strings.Fields(line) // mode owner size date time path
		if len(f) < 6 || f[1] != "root/root" {
			t.Errorf("not a root-owned entry: %q", line)
			continue
		}
		times[f[3]+" "+f[4]] = true
	}
	if len(times) != 1 {
		t.Errorf("the package's files carry %d times, want one (SOURCE_DATE_EPOCH): %v", len(times), times)
	}

	// A file that is not a pibake package is never replaced.
	other := filepath.Join(tmp, "notes.deb")
	if err := os.WriteFile(other, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(filepath.Join(top, "scripts", "deb.sh"), filepath.Join(tmp, "pibake"), version, other).CombinedOutput(); err == nil || !strings.Contains(string(b), "not a pibake package") {
		t.Errorf("deb.sh onto a file of the user's: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(other); string(b) != "mine\n" {
		t.Errorf("deb.sh changed a file of the user's: %q", b)
	}

	root := filepath.Join(tmp, "x")
	out(dpkgDeb, "-x", deb, root)
	pibake := filepath.Join(root, "usr", "bin", "pibake")
	if got := out(pibake, "--version"); !strings.Contains(got, version) {
		t.Errorf("pibake --version of the package: %q, want %s", got, version)
	}
	if got := out(pibake, "boards"); !strings.Contains(got, "pi4") {
		t.Errorf("pibake boards of the package lists no pi4:\n%s", got)
	}
}
