package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/sbom"
)

// SBOMFile is the SPDX document of a build of image name: NAME.spdx.json,
// next to NAME.img.
func SBOMFile(name string) string { return name + ".spdx.json" }

// writeSBOM writes NAME.spdx.json into the staging folder from the
// manifest (image, board, epoch, containers) and the lock (every Debian
// package with its .deb's sha256), and adds its line to SHA256SUMS. It
// runs after writeManifest and touches nothing else.
func writeSBOM(dir string, m *manifest.Manifest, lock *debian.Lock, board firmware.Board) error {
	in := sbom.Input{
		Image: sbom.Image{Name: m.Image, Version: m.Version, Board: m.Board, File: m.Disk.File, SHA256: m.Disk.SHA256},
		Epoch: m.SourceDateEpoch, Suite: lock.Suite,
	}
	for _, p := range lock.Packages {
		in.Debs = append(in.Debs, sbom.Deb{Name: p.Name, Version: p.Version, Arch: p.Arch, SHA256: p.SHA256, Unused: !bootPackageUsed(p, board), Archive: lock.ArchiveOf(p)})
	}
	for _, c := range m.Containers {
		in.Containers = append(in.Containers, sbom.Container{Name: c.Name, Source: c.Source, Digest: c.Digest})
	}
	data, err := sbom.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", SBOMFile(m.Image), err)
	}
	name := SBOMFile(m.Image)
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return fmt.Errorf("sbom: %w", err)
	}
	sum := sha256.Sum256(data)
	f, err := os.OpenFile(filepath.Join(dir, "SHA256SUMS"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("sbom: add to checksums: %w", err)
	}
	_, err = fmt.Fprintf(f, "%s  %s\n", hex.EncodeToString(sum[:]), name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sbom: add to checksums: %w", err)
	}
	return nil
}

// bootPackageUsed says whether a locked package's files are in an image
// for board: every root package is; of the boot packages, the board's
// U-Boot build and, on the Pis that boot their firmware from the card
// (not the Pi 5: its firmware is in EEPROM), raspi-firmware.
func bootPackageUsed(p debian.Package, board firmware.Board) bool {
	if p.Role != debian.RoleBoot {
		return true
	}
	return p.Name == board.UBootPackage || (p.Name == "raspi-firmware" && len(board.Firmware) > 0)
}
