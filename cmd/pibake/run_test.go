package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestUsage(t *testing.T) {
	if _, stderr, err := runCmd(); err == nil || exitCode(err) != 2 || !strings.Contains(stderr, "Usage:") {
		t.Errorf("no args: %v, %q", err, stderr)
	}
	if _, _, err := runCmd("frobnicate"); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
	if _, _, err := runCmd("build"); err == nil || exitCode(err) != 2 {
		t.Errorf("build without a definition: %v", err)
	}
	if _, _, err := runCmd("build", "--nope", "x.yaml"); err == nil || exitCode(err) != 2 {
		t.Errorf("unknown flag: %v", err)
	}
	out, _, err := runCmd("help")
	if err != nil || !strings.Contains(out, "pibake build") || !strings.Contains(out, "pibake inspect") {
		t.Errorf("help: %v %q", err, out)
	}
}

// TestVerbHelp: every verb prints its usage to stdout and exits 0 on -h
// and --help; an unknown flag still exits 2 with the usage on stderr.
func TestVerbHelp(t *testing.T) {
	if len(commands) < 10 {
		t.Fatalf("only %d verbs in the table", len(commands))
	}
	for _, c := range commands {
		for _, h := range []string{"--help", "-h"} {
			out, stderr, err := runCmd(c.name, h)
			if err != nil || exitCode(err) == 2 || !strings.Contains(out, "Usage: pibake "+c.name) || stderr != "" {
				t.Errorf("pibake %s %s: %v, stdout %q, stderr %q", c.name, h, err, out, stderr)
			}
		}
		if !strings.Contains(usage, "pibake "+c.name) {
			t.Errorf("pibake --help does not list %s", c.name)
		}
		_, stderr, err := runCmd(c.name, "--no-such-flag")
		if err == nil || exitCode(err) != 2 || !strings.Contains(stderr, "Usage: pibake "+c.name) {
			t.Errorf("pibake %s --no-such-flag: %v (exit %d), stderr %q", c.name, err, exitCode(err), stderr)
		}
	}
	if out, _, err := runCmd("--version"); err != nil || !strings.HasPrefix(out, "pibake ") {
		t.Errorf("--version: %v %q", err, out)
	}
}

func TestValidateCheckedIn(t *testing.T) {
	files, _ := filepath.Glob("../../images/*.yaml")
	out, _, err := runCmd(append([]string{"validate"}, files...)...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, ": ok") != len(files) {
		t.Errorf("validate output %q", out)
	}
}

func TestBuildBadDefinition(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "images", "bad.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("name: bad\nversion: 1\nboards: [pi4]\nhostnam: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	_, _, err := runCmd("build", "--out", out, p)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "bad.yaml:4: hostnam: unknown field") {
		t.Errorf("error %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output folder created by a failed build")
	}
}

func TestInspectRejectsNonImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.img")
	if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCmd("inspect", p)
	if err == nil || !strings.Contains(err.Error(), "partition table") {
		t.Errorf("error %v", err)
	}
}

func TestImagerVerb(t *testing.T) {
	if _, _, err := runCmd("imager", t.TempDir()); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--base-url is required") {
		t.Errorf("without --base-url: %v", err)
	}
	dir := t.TempDir()
	if _, _, err := runCmd("imager", "--base-url", "https://h/img", dir); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), dir+" is not a build folder") {
		t.Errorf("a folder without a build: %v", err)
	}
}

func TestProvisionCheck(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "pibake-provision.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("hostname: box-1\ntimezone: Europe/Paris\n"), 0o600)
	os.WriteFile(bad, []byte("hostname: box-1\nwifi:\n  country: FR\n  networks:\n    - ssid: x\n      pasword: hunter2hunter2\n"), 0o600)
	if out, _, err := runCmd("provision", "check", good); err != nil || !strings.Contains(out, ": ok") {
		t.Errorf("good: %v %q", err, out)
	}
	_, _, err := runCmd("provision", "check", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml:6: wifi.networks.0: unknown field") || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "pasword") {
		t.Errorf("bad: %v", err)
	}
	ud := filepath.Join(dir, "user-data")
	os.WriteFile(ud, []byte("#cloud-config\nhostname: kitchen\nruncmd:\n  - [reboot]\n"), 0o600)
	if out, _, err := runCmd("provision", "check", ud); err != nil || !strings.Contains(out, "not applied: user-data: runcmd") {
		t.Errorf("user-data: %v %q", err, out)
	}
	if _, _, err := runCmd("provision"); exitCode(err) != 2 {
		t.Errorf("no verb: %v", err)
	}
}

func TestFlashUsage(t *testing.T) {
	if _, _, err := runCmd("flash", "only-an-image.img"); err == nil || exitCode(err) != 2 {
		t.Errorf("flash with one argument: %v", err)
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, nil, 0o644)
	_, _, err := runCmd("flash", "--provision", empty, filepath.Join(dir, "x.img"), filepath.Join(dir, "card"))
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty provisioning file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "card")); err == nil {
		t.Error("a refused flash created the target")
	}
}
