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
