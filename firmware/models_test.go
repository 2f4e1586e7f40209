package firmware

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestModelsMatchUBoot: the device tree names of the board table are the
// ones u-boot-rpi's rpi_arm64 build sets ${fdtfile} to (read from the
// binary the demo lock pins, when the cache has it), and every name it
// has for a SoC pibake supports is a model of that SoC's board.
func TestModelsMatchUBoot(t *testing.T) {
	bin := lockedUBoot(t)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`broadcom/(bcm2[78][0-9]+-[a-z0-9-]+\.dtb)\x00`).FindAllSubmatch(bin, -1) {
		names[string(m[1])] = true
	}
	if len(names) == 0 {
		t.Fatal("no broadcom/*.dtb names in u-boot.bin")
	}
	socs := map[string]string{"bcm2837-": "pi3", "bcm2711-": "pi4", "bcm2712-": "pi5"}
	covered := map[string]bool{}
	for _, b := range Boards {
		for _, m := range b.Models {
			covered[m.FDTFile] = true
			if !names[m.FDTFile] {
				t.Errorf("board %s, %s: u-boot-rpi never loads %s", b.Name, m.Name, m.FDTFile)
			}
		}
	}
	for n := range names {
		for prefix, board := range socs {
			if strings.HasPrefix(n, prefix) && !covered[n] {
				t.Errorf("u-boot-rpi loads %s, which no model of board %s names", n, board)
			}
		}
	}
	t.Logf("u-boot-rpi's device trees: %v; the boards' models name %d", names, len(covered))
}

// lockedUBoot reads rpi_arm64/u-boot.bin out of the u-boot-rpi package
// images/demo.lock pins, from the package cache.
func lockedUBoot(t *testing.T) []byte {
	t.Helper()
	const bin = "usr/lib/u-boot/rpi_arm64/u-boot.bin"
	return lockedFiles(t, "../images/demo.lock", "u-boot-rpi", func(name string) bool { return name == bin })[bin]
}

// lockedFiles reads the files match selects out of the package pkg a
// lock pins, from the package cache (the test is skipped when the cache
// does not have it); it fails when match selects nothing.
func lockedFiles(t *testing.T, lockFile, pkg string, match func(name string) bool) map[string][]byte {
	t.Helper()
	lock, err := os.ReadFile(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`name: ` + regexp.QuoteMeta(pkg) + `, .*sha256: ([0-9a-f]{64})`).FindSubmatch(lock)
	if m == nil {
		t.Fatalf("%s pins no %s", lockFile, pkg)
	}
	cache := os.Getenv("PIBAKE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "pibake")
	}
	deb := filepath.Join(cache, "debs", string(m[1])+".deb")
	if _, err := os.Stat(deb); err != nil {
		t.Skipf("%s is not in the package cache (%v): 'pibake build %s' fetches it", pkg, err, strings.Replace(lockFile, ".lock", ".yaml", 1))
	}
	out, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v", deb, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name := strings.TrimPrefix(h.Name, "./"); match(name) {
			if files[name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(files) == 0 {
		t.Fatalf("%s has none of the files the test reads", deb)
	}
	return files
}
