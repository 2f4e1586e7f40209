package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/release"
)

// releaseFiles are the release forms as the manifest lists them.
func releaseFiles(r *release.Result) []manifest.File {
	var out []manifest.File
	for _, f := range []release.File{r.Zst, r.Bmap} {
		out = append(out, manifest.File{File: f.Name, Size: f.Size, SHA256: f.SHA256})
	}
	return out
}

// imageSums are the sha256 of the whole image and of each partition.
type imageSums struct {
	disk  string
	parts []string
	err   error
}

// hashImageWritten hashes the image at path, of which only written holds
// data: the rest of the sparse file is zeros and is not read.
func hashImageWritten(path string, lay layout.Layout, written bmap.Extents) imageSums {
	img, err := os.Open(path)
	if err != nil {
		return imageSums{err: err}
	}
	defer img.Close()
	d, p, err := hashImage(bmap.Written{R: img, Extents: written.Normalize(), Size: lay.DiskSize}, lay)
	return imageSums{d, p, err}
}

// hashImage reads the image once and returns the sha256 of the whole disk
// and of each partition (partitions do not overlap and are in disk order).
func hashImage(r io.ReaderAt, lay layout.Layout) (string, []string, error) {
	disk := sha256.New()
	sums := make([]string, len(lay.Parts))
	var off int64
	feed := func(n int64, part hash.Hash) error {
		w := io.Writer(disk)
		if part != nil {
			w = io.MultiWriter(disk, part)
		}
		_, err := io.Copy(w, io.NewSectionReader(r, off, n))
		off += n
		return err
	}
	for i, p := range lay.Parts {
		if err := feed(p.Offset-off, nil); err != nil {
			return "", nil, err
		}
		h := sha256.New()
		if err := feed(p.Size, h); err != nil {
			return "", nil, err
		}
		sums[i] = hex.EncodeToString(h.Sum(nil))
	}
	if err := feed(lay.DiskSize-off, nil); err != nil {
		return "", nil, err
	}
	return hex.EncodeToString(disk.Sum(nil)), sums, nil
}

// manifestOf gathers the manifest from what the stages left on the
// build; mmdebstrap is the version of the tool that bootstrapped bases.
func (b *build) manifestOf(mmdebstrap string) *manifest.Manifest {
	def, rf := b.def, b.rf
	m := &manifest.Manifest{
		Format: manifest.Format, Image: def.Name, Version: def.Version, Board: b.board.Name, Env: orDefault(def.Env),
		Bootloader: def.Bootloader, SourceDateEpoch: b.epoch, Kernel: rf.res.KernelVersion,
		Rootfs:    manifest.Rootfs{Size: rf.size, SHA256: rf.sha256, Compressor: rf.compressor},
		Initramfs: manifest.Initramfs{Size: int64(len(b.initrd)), Go: b.goVersion},
		Agent:     b.agent,
		Tools:     map[string]string{"go": b.goVersion, "tar2sqfs": rf.tool, "mmdebstrap": mmdebstrap},
		Lock:      manifest.Lock{File: filepath.Base(b.lockPath), SHA256: strings.TrimPrefix(debian.Digest(b.lockData), "sha256:")},
		Release:   b.release,
		Disk:      manifest.Disk{File: b.imgName, Size: b.lay.DiskSize, Signature: fmt.Sprintf("0x%08x", b.sig), SHA256: b.sums.disk},
	}
	if u := def.Updater; u != nil {
		m.Channels = append([]string{u.Channel}, u.Channels...)
	}
	for i, p := range b.lay.Parts {
		m.Partitions = append(m.Partitions, manifest.Partition{Number: p.Number, Name: p.Name, Type: fmt.Sprintf("0x%02x", p.Type), FS: p.FS,
			PartUUID: fmt.Sprintf("%08x-%02x", b.sig, p.Number), Offset: p.Offset, Size: p.Size, SHA256: b.sums.parts[i]})
	}
	for _, p := range rf.res.Packages {
		mp := manifest.Package{Name: p.Name, Version: p.Version, Arch: p.Arch}
		if lp, ok := b.lock.Find(p.Name, debian.RoleRoot); ok && lp.Version == p.Version {
			mp.SHA256 = lp.SHA256
		}
		m.Packages = append(m.Packages, mp)
	}
	for _, p := range b.lock.Role(debian.RoleBoot) {
		m.BootPackages = append(m.BootPackages, manifest.Package{Name: p.Name, Version: p.Version, Arch: p.Arch, SHA256: p.SHA256})
	}
	sort.Slice(m.BootPackages, func(i, j int) bool { return m.BootPackages[i].Name < m.BootPackages[j].Name })
	for _, c := range rf.containers {
		m.Containers = append(m.Containers, manifest.Container{Name: c.name, Source: c.source, Digest: c.digest, Bytes: c.treeBytes, Entries: c.entries, Runtime: c.runtime, ImageID: c.imageID})
	}
	return m
}

// writeManifest writes manifest.json and SHA256SUMS into dir.
func writeManifest(dir string, m *manifest.Manifest) error {
	data, err := manifest.Write(dir, m)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), checksums(m, data), 0o644); err != nil {
		return fmt.Errorf("checksums: %w", err)
	}
	return nil
}

// checksums is SHA256SUMS before the SBOM's line: the image, its release
// forms and the manifest (whose bytes are manifestJSON).
func checksums(m *manifest.Manifest, manifestJSON []byte) []byte {
	msum := sha256.Sum256(manifestJSON)
	sums := fmt.Sprintf("%s  %s\n", m.Disk.SHA256, m.Disk.File)
	for _, f := range m.Release {
		sums += fmt.Sprintf("%s  %s\n", f.SHA256, f.File)
	}
	sums += fmt.Sprintf("%s  %s\n", hex.EncodeToString(msum[:]), manifest.FileName)
	return []byte(sums)
}
