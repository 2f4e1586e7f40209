package bootloader

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pibake/pibake/bootchain"
)

func TestUBootFile(t *testing.T) {
	dir := t.TempDir()
	u := UBoot{Dir: dir}
	if p, err := u.Primary(); err != nil || p != bootchain.A {
		t.Fatalf("no file: %s %v", p, err)
	}
	if err := u.TryOnce(bootchain.B); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, bootchain.StateFile))
	if string(data) != "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=1\n" {
		t.Errorf("after TryOnce(b): %q", data)
	}
	if err := u.MarkGood(bootchain.B); err != nil {
		t.Fatal(err)
	}
	if p, _ := u.Primary(); p != bootchain.B {
		t.Errorf("primary %s after MarkGood(b)", p)
	}
	// What U-Boot's env export writes (NUL-terminated) reads back.
	os.WriteFile(filepath.Join(dir, bootchain.StateFile), []byte("BOOT_ORDER=A B\nBOOT_A_LEFT=0\nBOOT_B_LEFT=2\n\x00"), 0o644)
	if p, err := u.Primary(); err != nil || p != bootchain.B {
		t.Errorf("exported state: primary %s, %v", p, err)
	}
	// A malformed StateFile (a torn write by U-Boot) reads as the agent's
	// copy, as the script reads it; without the copy, as the defaults.
	u.MarkGood(bootchain.B)
	os.WriteFile(filepath.Join(dir, bootchain.StateFile), []byte("BOOT_ORDER=A A\n"), 0o644)
	if p, err := u.Primary(); err != nil || p != bootchain.B {
		t.Errorf("malformed state, copy says b: primary %s, %v", p, err)
	}
	os.Remove(filepath.Join(dir, bootchain.AgentStateFile))
	if p, err := u.Primary(); err != nil || p != bootchain.A {
		t.Errorf("malformed state, no copy: primary %s, %v", p, err)
	}
	if _, err := os.Stat(filepath.Join(dir, bootchain.StateFile+".new")); !os.IsNotExist(err) {
		t.Error("temporary file left behind")
	}
}

func TestTrybootFile(t *testing.T) {
	dir := t.TempDir()
	tb := Tryboot{Dir: dir}
	if p, err := tb.Primary(); err != nil || p != bootchain.A {
		t.Fatalf("fresh image: %s %v", p, err)
	}
	if err := tb.TryOnce(bootchain.A); err == nil {
		t.Error("a trial of the committed slot accepted")
	}
	if err := tb.TryOnce(bootchain.B); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, bootchain.AutobootFile))
	normal, try, enabled, err := bootchain.ParseAutoboot(data)
	if err != nil || !enabled || normal != 2 || try != 3 {
		t.Fatalf("after TryOnce(b): normal %d tryboot %d enabled %v (%v)\n%s", normal, try, enabled, err, data)
	}
	if err := tb.MarkGood(bootchain.B); err != nil {
		t.Fatal(err)
	}
	if p, _ := tb.Primary(); p != bootchain.B {
		t.Errorf("committed %s after MarkGood(b)", p)
	}
	if err := tb.MarkBad(bootchain.B); err != nil {
		t.Fatal(err)
	}
	if p, _ := tb.Primary(); p != bootchain.A {
		t.Errorf("committed %s after MarkBad(b)", p)
	}
	os.WriteFile(filepath.Join(dir, bootchain.AutobootFile), []byte("[all]\nboot_partition=7\ntryboot_a_b=1\n"), 0o644)
	if _, err := tb.Primary(); !errors.Is(err, bootchain.ErrState) {
		t.Errorf("autoboot.txt naming partition 7: %v", err)
	}
}

func TestTrybootKernel(t *testing.T) {
	for rel, ok := range map[string]bool{"6.12.34+rpt-rpi-v8": true, "6.6.51+rpt-rpi-2712": true, "6.12.48+deb13-arm64": false, "6.1.0-37-arm64": false} {
		if err := CheckTrybootKernel(rel); (err == nil) != ok {
			t.Errorf("%s: %v", rel, err)
		} else if err != nil && !errors.Is(err, ErrNoTrybootKernel) {
			t.Errorf("%s: %v does not wrap ErrNoTrybootKernel", rel, err)
		}
	}
}

// TestDescribe: status shows the state of the configured chain, whatever
// files bootsel holds.
func TestDescribe(t *testing.T) {
	dir := t.TempDir()
	if got, want := Describe(bootchain.UBoot, dir), "BOOT_ORDER=A B BOOT_A_LEFT=3 BOOT_B_LEFT=3"; got != want {
		t.Errorf("uboot, fresh: %q, want %q", got, want)
	}
	if got, want := Describe(bootchain.Tryboot, dir), "tryboot: slot a committed (autoboot.txt)"; got != want {
		t.Errorf("tryboot, fresh: %q, want %q", got, want)
	}
	if err := (Tryboot{Dir: dir}).MarkGood(bootchain.B); err != nil {
		t.Fatal(err)
	}
	if got, want := Describe(bootchain.Tryboot, dir), "tryboot: slot b committed (autoboot.txt)"; got != want {
		t.Errorf("tryboot, b committed: %q, want %q", got, want)
	}
	if got, want := Describe(bootchain.UBoot, dir), "BOOT_ORDER=A B BOOT_A_LEFT=3 BOOT_B_LEFT=3"; got != want {
		t.Errorf("uboot beside an autoboot.txt: %q, want %q", got, want)
	}
}
