package uboot_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pibake/pibake/firmware/uboot"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
	"github.com/pibake/pibake/internal/hosttool"
)

// TestScriptImageMatchesMkimage compares with U-Boot's own mkimage, byte for
// byte (SOURCE_DATE_EPOCH=0 makes mkimage's timestamp 0 like ours).
func TestScriptImageMatchesMkimage(t *testing.T) {
	script := "echo pibake\nsetenv x 1\n"
	ours, err := uboot.ScriptImage("pibake boot", script)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ubootcheck.ParseScriptImage(ours)
	if err != nil || got != script {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	hosttool.Need(t, "mkimage", "u-boot-tools")
	dir := t.TempDir()
	src, out := filepath.Join(dir, "s.txt"), filepath.Join(dir, "s.scr")
	if err := os.WriteFile(src, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mkimage", "-A", "arm64", "-O", "linux", "-T", "script", "-C", "none", "-n", "pibake boot", "-d", src, out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkimage: %v\n%s", err, b)
	}
	theirs, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs) {
		t.Errorf("differs from mkimage:\nours   % x\ntheirs % x", ours[:72], theirs[:72])
	}
}

func TestParseScriptImageRejectsCorruption(t *testing.T) {
	img, _ := uboot.ScriptImage("x", "echo hi\n")
	for i, mut := range []func(b []byte){
		func(b []byte) { b[0] ^= 1 },        // magic
		func(b []byte) { b[40] ^= 1 },       // name: header CRC
		func(b []byte) { b[len(b)-1] ^= 1 }, // data CRC
		func(b []byte) { b[30] = 2 },        // not a script
	} {
		b := append([]byte(nil), img...)
		mut(b)
		if _, err := ubootcheck.ParseScriptImage(b); err == nil {
			t.Errorf("corruption %d accepted", i)
		}
	}
	if _, err := uboot.ScriptImage(string(make([]byte, 40)), ""); err == nil {
		t.Error("long name accepted")
	}
}
