package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/release"
)

// ManifestFormat is the version of manifest.json.
const ManifestFormat = 1

// Manifest is manifest.json: everything a build produced and from what.
type Manifest struct {
	Format          int                 `json:"format"`
	Image           string              `json:"image"`
	Version         string              `json:"version"`
	Board           string              `json:"board"`
	Env             string              `json:"env"`
	Bootloader      string              `json:"bootloader"`
	SourceDateEpoch int64               `json:"source_date_epoch"`
	Disk            ManifestDisk        `json:"disk"`
	Partitions      []ManifestPartition `json:"partitions"`
	Kernel          string              `json:"kernel"`
	Rootfs          ManifestRootfs      `json:"rootfs"`
	Initramfs       ManifestInitramfs   `json:"initramfs"`
	Tools           map[string]string   `json:"tools"` // host tools whose version shapes the output
	Lock            ManifestLock        `json:"lock"`
	Packages        []ManifestPackage   `json:"packages"`
	BootPackages    []ManifestPackage   `json:"boot_packages"`
	Containers      []ManifestContainer `json:"containers,omitempty"`
	// Release lists the files made from the image for download and
	// flashing (NAME.img.zst, NAME.bmap), in SHA256SUMS too.
	Release []ManifestFile `json:"release,omitempty"`
}

// ManifestFile is one output file next to the image.
type ManifestFile struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func releaseFiles(r *release.Result) []ManifestFile {
	var out []ManifestFile
	for _, f := range []release.File{r.Zst, r.Bmap} {
		out = append(out, ManifestFile{File: f.Name, Size: f.Size, SHA256: f.SHA256})
	}
	return out
}

// ManifestContainer is a container the image carries.
type ManifestContainer struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Digest string `json:"digest"` // of the linux/arm64 image manifest
	// Bytes is the size of the flattened tree (uncompressed tar), the
	// container's cost before squashfs compression.
	Bytes   int64 `json:"bytes"`
	Entries int   `json:"entries"`
	// Runtime is podman or docker; ImageID is the ID docker knows the
	// loaded image by (docker runtime only).
	Runtime string `json:"runtime"`
	ImageID string `json:"image_id,omitempty"`
}

// ManifestDisk describes the whole image file.
type ManifestDisk struct {
	File      string `json:"file"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Signature string `json:"signature"`
}

// ManifestPartition describes one partition of the image.
type ManifestPartition struct {
	Number   int    `json:"number"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	FS       string `json:"fs"`
	PartUUID string `json:"partuuid"`
	Offset   int64  `json:"offset"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// ManifestRootfs describes the root filesystem image in each root slot.
type ManifestRootfs struct {
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256"`
	Compressor string `json:"compressor"`
}

// ManifestInitramfs describes the initramfs in each boot slot.
type ManifestInitramfs struct {
	Size int64  `json:"size"`
	Go   string `json:"go"` // the toolchain that compiled pibake-init
}

// ManifestLock identifies the lock file the build used.
type ManifestLock struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// ManifestPackage is one Debian package.
type ManifestPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	SHA256  string `json:"sha256,omitempty"`
}

// hashImage reads the image once and returns the sha256 of the whole disk
// and of each partition (partitions do not overlap and are in disk order).
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

func writeManifest(dir, imgName string, def *imagedef.Definition, board firmware.Board, lay layout.Layout, sig uint32, lock *debian.Lock, lockData []byte, lockPath string, rf *rootfsOut, epoch int64, goVersion, mmdebstrap string, initrdSize int, rel []ManifestFile, hashes imageSums) (*Manifest, error) {
	m := &Manifest{
		Format: ManifestFormat, Image: def.Name, Version: def.Version, Board: board.Name, Env: orDefault(def.Env),
		Bootloader: def.Bootloader, SourceDateEpoch: epoch, Kernel: rf.res.KernelVersion,
		Rootfs:    ManifestRootfs{Size: rf.size, SHA256: rf.sha256, Compressor: rf.compressor},
		Initramfs: ManifestInitramfs{Size: int64(initrdSize), Go: goVersion},
		Tools:     map[string]string{"go": goVersion, "tar2sqfs": rf.tool, "mmdebstrap": mmdebstrap},
		Lock:      ManifestLock{File: filepath.Base(lockPath), SHA256: strings.TrimPrefix(debian.Digest(lockData), "sha256:")},
		Release:   rel,
	}
	m.Disk = ManifestDisk{File: imgName, Size: lay.DiskSize, Signature: fmt.Sprintf("0x%08x", sig)}
	if hashes.err != nil {
		return nil, fmt.Errorf("manifest: %w", hashes.err)
	}
	m.Disk.SHA256 = hashes.disk
	for i, p := range lay.Parts {
		m.Partitions = append(m.Partitions, ManifestPartition{Number: p.Number, Name: p.Name, Type: fmt.Sprintf("0x%02x", p.Type), FS: p.FS,
			PartUUID: fmt.Sprintf("%08x-%02x", sig, p.Number), Offset: p.Offset, Size: p.Size, SHA256: hashes.parts[i]})
	}
	for _, p := range rf.res.Packages {
		mp := ManifestPackage{Name: p.Name, Version: p.Version, Arch: p.Arch}
		if lp, ok := lock.Find(p.Name, debian.RoleRoot); ok && lp.Version == p.Version {
			mp.SHA256 = lp.SHA256
		}
		m.Packages = append(m.Packages, mp)
	}
	for _, p := range lock.Role(debian.RoleBoot) {
		m.BootPackages = append(m.BootPackages, ManifestPackage{Name: p.Name, Version: p.Version, Arch: p.Arch, SHA256: p.SHA256})
	}
	sort.Slice(m.BootPackages, func(i, j int) bool { return m.BootPackages[i].Name < m.BootPackages[j].Name })
	for _, c := range rf.containers {
		m.Containers = append(m.Containers, ManifestContainer{Name: c.name, Source: c.source, Digest: c.digest, Bytes: c.treeBytes, Entries: c.entries, Runtime: c.runtime, ImageID: c.imageID})
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), data, 0o644); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	msum := sha256.Sum256(data)
	sums := fmt.Sprintf("%s  %s\n", m.Disk.SHA256, imgName)
	for _, f := range rel {
		sums += fmt.Sprintf("%s  %s\n", f.SHA256, f.File)
	}
	sums += fmt.Sprintf("%s  %s\n", hex.EncodeToString(msum[:]), "manifest.json")
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(sums), 0o644); err != nil {
		return nil, fmt.Errorf("checksums: %w", err)
	}
	return m, nil
}
