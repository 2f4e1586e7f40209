package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/firmware"
)

// TestVerbHelpSaysWhat: every verb's help says what it does and shows an
// example; 'pibake help VERB' prints the same; 'pibake help' the usage.
func TestVerbHelpSaysWhat(t *testing.T) {
	for _, c := range commands {
		args := []string{c.name, "--help"}
		switch c.name {
		case "provision":
			args = []string{"provision", "check", "--help"}
		case "fleet":
			args = []string{"fleet", "status", "--help"}
		}
		want, _, err := runCmd(args...)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := helps[strings.Join(args[:len(args)-1], " ")]; !ok || !strings.Contains(want, "\nExample:\n  ") {
			t.Errorf("pibake %s --help has no description or example:\n%s", c.name, want)
		}
		got, _, err := runCmd("help", c.name)
		if err != nil || got != want {
			t.Errorf("pibake help %s: %v\n%s\nwant\n%s", c.name, err, got, want)
		}
	}
	if out, _, err := runCmd("help"); err != nil || out != usage {
		t.Errorf("pibake help: %v %q", err, out)
	}
	if _, _, err := runCmd("help", "frobnicate"); exitCode(err) != 2 {
		t.Errorf("help of an unknown verb: %v", err)
	}
}

// TestBoards: pibake boards lists firmware's table, the one the build
// uses, with the QEMU machine, the Pi 5's kernel and caveats, and the
// device tree of every model.
func TestBoards(t *testing.T) {
	out, _, err := runCmd("boards")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"pi3    Raspberry Pi 3 B/B+/A+, Zero 2 W, CM3 (64-bit)", "raspi3b", "Pi 400", "raspi4b", "pi5: kernel: the trixie-backports kernel", "pi5: no QEMU machine emulates it", "virt",
		"Compute Module 4       pi4    bcm2711-rpi-cm4.dtb (the kernel's bcm2711-rpi-cm4-io.dtb)", "Raspberry Pi Zero 2 W  pi3    bcm2837-rpi-zero-2-w.dtb"} {
		if !strings.Contains(out, w) {
			t.Errorf("boards lacks %q:\n%s", w, out)
		}
	}
	out, _, err = runCmd("boards", "--json")
	var list []boardInfo
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != len(firmware.Boards) {
		t.Fatalf("boards --json: %v %s", err, out)
	}
	for i, b := range list {
		if b.Name != firmware.Boards[i].Name || !b.Supported {
			t.Errorf("board %d: %+v", i, b)
		}
	}
}

// TestCompletion: the bash script completes verbs and each verb's flags,
// as bash itself runs it.
func TestCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	out, _, err := runCmd("completion", "bash")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "c.sh")
	os.WriteFile(script, []byte(out), 0o644)
	for line, want := range map[string]string{
		"pibake bu":             "build bundle",
		"pibake build --e":      "--env",
		"pibake validate --":    "--env --json",
		"pibake provision c":    "check",
		"pibake completion z":   "zsh",
		"pibake help pub":       "publish",
		"pibake flash --no":     "--no-bmap",
		"pibake publish --rep":  "--repo",
		"pibake keygen --passw": "--password-file",
	} {
		words := strings.Fields(line)
		cmd := exec.Command(bash, "-c", `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($#-1)); _pibake; echo "${COMPREPLY[*]}"`, "x", script)
		cmd.Args = append(cmd.Args, words...)
		got, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%q completes to %q (%v), want %q", line, got, err, want)
		}
	}
	if out, _, err := runCmd("completion", "zsh"); err != nil || !strings.HasPrefix(out, "#compdef pibake") {
		t.Errorf("zsh: %v", err)
	}
	if _, _, err := runCmd("completion", "fish"); exitCode(err) != 2 {
		t.Errorf("fish: %v", err)
	}
}
