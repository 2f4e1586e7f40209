package builder

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/sbom"
	"github.com/pibake/pibake/sbom/sbomcheck"
)

// checkSBOM checks a build's NAME.spdx.json with SPDX's own Go tools:
// every package of the lock and every container of manifest.json is in
// it, and sha256sum -c accepts SHA256SUMS with the SBOM listed.
func checkSBOM(t *testing.T, outDir, lockPath string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(outDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifest.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	lock, _, err := debian.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(outDir, SBOMFile(m.Image)))
	if err != nil {
		t.Fatalf("no SBOM: %v", err)
	}
	board, err := firmware.Lookup(m.Board)
	if err != nil {
		t.Fatal(err)
	}
	image, debs, containers := sbomWant(m, lock, board)
	if err := sbomcheck.Check(data, image, debs, containers); err != nil {
		t.Errorf("%s: %v", SBOMFile(m.Image), err)
	}
	sums, _ := os.ReadFile(filepath.Join(outDir, "SHA256SUMS"))
	if !strings.Contains(string(sums), "  "+SBOMFile(m.Image)+"\n") {
		t.Errorf("SHA256SUMS does not list the SBOM:\n%s", sums)
	}
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = outDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	t.Logf("%s: %d bytes, %d Debian packages, %d containers", SBOMFile(m.Image), len(data), len(debs), len(containers))
}

// sbomWant is what an SBOM must hold, from the lock and manifest.json
// alone (not from writeSBOM's code).
func sbomWant(m manifest.Manifest, lock *debian.Lock, board firmware.Board) (sbom.Image, []sbom.Deb, []sbom.Container) {
	image := sbom.Image{Name: m.Image, Version: m.Version, Board: m.Board, File: m.Disk.File, SHA256: m.Disk.SHA256}
	var debs []sbom.Deb
	for _, p := range lock.Packages {
		unused := p.Role == debian.RoleBoot && p.Name != board.UBootPackage && !(p.Name == "raspi-firmware" && !board.Emulated)
		debs = append(debs, sbom.Deb{Name: p.Name, Version: p.Version, Arch: p.Arch, SHA256: p.SHA256, Unused: unused})
	}
	var cs []sbom.Container
	for _, c := range m.Containers {
		cs = append(cs, sbom.Container{Name: c.Name, Source: c.Source, Digest: c.Digest})
	}
	return image, debs, cs
}

// TestSBOMOfDemoLock writes the SBOM the demo's pi4 build would have, from
// the checked-in lock, and checks every one of its packages is there. With
// PIBAKE_SBOM_BUILD=DIR it takes manifest.json from an existing build
// (e.g. out/demo) instead of a stand-in.
func TestSBOMOfDemoLock(t *testing.T) {
	lockPath := filepath.Join("..", "images", "demo.lock")
	lock, _, err := debian.ReadLock(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{Image: "demo", Version: "0.1.0", Board: "pi4", SourceDateEpoch: lock.SourceDateEpoch,
		Disk:       manifest.Disk{File: "demo.img", SHA256: strings.Repeat("ab", 32)},
		Containers: []manifest.Container{{Name: "hello", Source: "go:examples/hello", Digest: "sha256:" + strings.Repeat("cd", 32)}}}
	if dir := os.Getenv("PIBAKE_SBOM_BUILD"); dir != "" {
		raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		m = &manifest.Manifest{}
		if err := json.Unmarshal(raw, m); err != nil {
			t.Fatal(err)
		}
		// Every installed package of the real build is a locked one.
		for _, p := range append(append([]manifest.Package(nil), m.Packages...), m.BootPackages...) {
			if lp, ok := lock.Find(p.Name, debian.RoleRoot); !(ok && lp.Version == p.Version) {
				if lp, ok = lock.Find(p.Name, debian.RoleBoot); !(ok && lp.Version == p.Version) {
					t.Errorf("%s has %s %s, not in %s", dir, p.Name, p.Version, lockPath)
				}
			}
		}
	}
	board, err := firmware.Lookup(m.Board)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeSBOM(dir, m, lock, board); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "demo.spdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	image, debs, cs := sbomWant(*m, lock, board)
	if err := sbomcheck.Check(data, image, debs, cs); err != nil {
		t.Error(err)
	}
	unused := 0
	for _, d := range debs {
		if d.Unused {
			unused++
		}
	}
	if len(debs) != len(lock.Packages) || unused != 1 {
		t.Errorf("%d packages (%d unused), want the lock's %d with u-boot-qemu alone unused on a pi4", len(debs), unused, len(lock.Packages))
	}
	t.Logf("demo SBOM: %d bytes, %d Debian packages (%d not in a %s image), %d containers", len(data), len(debs), unused, m.Board, len(cs))
}
