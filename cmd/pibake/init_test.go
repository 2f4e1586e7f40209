package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/imagedef"
)

// TestInit: pibake init writes a repository whose definition loads in
// every environment, anchored at the new folder, and refuses a folder
// that holds anything or a name that is no image name.
func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-fleet")
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"init", dir}, &out, &errb); err != nil {
		t.Fatalf("init: %v\n%s", err, errb.String())
	}
	for _, f := range []string{"images/my-fleet.yaml", "overlays/base/etc/motd", "Makefile", ".gitignore", ".github/workflows/images.yml", "README.md"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("init wrote no %s: %v", f, err)
		} else if strings.Contains(string(data), "@NAME@") {
			t.Errorf("%s still holds @NAME@", f)
		}
	}
	def := filepath.Join(dir, "images", "my-fleet.yaml")
	for _, env := range []string{"", "test", "preprod", "prod"} {
		d, err := imagedef.Load(def, imagedef.Options{Env: env})
		if err != nil {
			t.Errorf("env %q: %v", env, err)
			continue
		}
		if d.Name != "my-fleet" || d.Dir != dir {
			t.Errorf("env %q: name %s, project root %s, want my-fleet and %s", env, d.Name, d.Dir, dir)
		}
	}
	if !strings.Contains(out.String(), "pibake lock images/my-fleet.yaml") {
		t.Errorf("init does not say what to do next:\n%s", out.String())
	}

	// Nothing is written over: the folder now holds files.
	motd := filepath.Join(dir, "overlays", "base", "etc", "motd")
	if err := os.WriteFile(motd, []byte("ours\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), []string{"init", dir}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("init into a repository: %v", err)
	}
	if b, _ := os.ReadFile(motd); string(b) != "ours\n" {
		t.Error("init wrote over a file")
	}
	err = run(context.Background(), []string{"init", filepath.Join(t.TempDir(), "My_Fleet")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "--name") || exitCode(err) != 2 {
		t.Errorf("init My_Fleet: %v", err)
	}
	if err := run(context.Background(), []string{"init", "--name", "box", filepath.Join(t.TempDir(), "My_Fleet")}, &out, &errb); err != nil {
		t.Errorf("init --name box: %v", err)
	}

	// The .gitignore keeps private keys and provisioning files out, and
	// lets public keys and the definition in.
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git to check the .gitignore with")
	}
	if b, err := exec.Command("git", "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, b)
	}
	for p, ignored := range map[string]bool{
		"keys/fleet.key": true, "keys/fleet.pub": false, "provision/box-1.yaml": true, "pibake-provision.yaml": true,
		"user-data": true, "out/my-fleet-pi4/my-fleet.img": true, "images/my-fleet.yaml": false, "images/my-fleet.lock": false,
	} {
		err := exec.Command("git", "-C", dir, "check-ignore", "-q", p).Run()
		if got := err == nil; got != ignored {
			t.Errorf("%s ignored: %v, want %v", p, got, ignored)
		}
	}
}
