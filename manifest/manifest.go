// Package manifest owns manifest.json, the record a build writes next to
// its image: what the build produced (the disk, its partitions, the root
// filesystem, the initramfs, the release files) and from what (the lock
// file, the Debian packages, the containers, the host tools). The builder
// fills it in; publish, imager and the other readers load it through this
// package, which imports only the standard library, so reading a manifest
// links none of the builder.
//
// The JSON field names and their order are an interface: tools outside
// pibake read them, and SHA256SUMS records the file's sha256, so Encode
// writes the same bytes for the same value.
package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Format is the version of manifest.json this package reads and writes.
const Format = 1

// FileName is the manifest's name in a build output folder.
const FileName = "manifest.json"

// Manifest is manifest.json: everything a build produced and from what.
type Manifest struct {
	Format          int         `json:"format"`
	Image           string      `json:"image"`
	Version         string      `json:"version"`
	Board           string      `json:"board"`
	Env             string      `json:"env"`
	Bootloader      string      `json:"bootloader"`
	SourceDateEpoch int64       `json:"source_date_epoch"`
	Disk            Disk        `json:"disk"`
	Partitions      []Partition `json:"partitions"`
	Kernel          string      `json:"kernel"`
	Rootfs          Rootfs      `json:"rootfs"`
	Initramfs       Initramfs   `json:"initramfs"`
	Agent           Agent       `json:"agent,omitzero"` // absent in manifests before the field
	// Channels are the channels the image's devices may follow: its
	// signed configuration's updater.channel first, then the
	// updater.channels an override may switch to. None for an image
	// without an updater (and in manifests before the field); publish
	// refuses another channel.
	Channels     []string          `json:"channels,omitempty"`
	Tools        map[string]string `json:"tools"` // host tools whose version shapes the output
	Lock         Lock              `json:"lock"`
	Packages     []Package         `json:"packages"`
	BootPackages []Package         `json:"boot_packages"`
	Containers   []Container       `json:"containers,omitempty"`
	// Release lists the files made from the image for download and
	// flashing (NAME.img.zst, NAME.bmap), in SHA256SUMS too.
	Release []File `json:"release,omitempty"`
}

// File is one output file next to the image.
type File struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Container is a container the image carries.
type Container struct {
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

// Disk describes the whole image file.
type Disk struct {
	File      string `json:"file"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Signature string `json:"signature"`
}

// Partition describes one partition of the image.
type Partition struct {
	Number   int    `json:"number"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	FS       string `json:"fs"`
	PartUUID string `json:"partuuid"`
	Offset   int64  `json:"offset"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// Rootfs describes the root filesystem image in each root slot.
type Rootfs struct {
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256"`
	Compressor string `json:"compressor"`
}

// Initramfs describes the initramfs in each boot slot.
type Initramfs struct {
	Size int64  `json:"size"`
	Go   string `json:"go"` // the toolchain that compiled pibake-init
}

// Agent is the update agent the image carries (/usr/bin/pibake-updater).
type Agent struct {
	Version string `json:"version"` // the pibake version it was compiled from
	SHA256  string `json:"sha256"`
}

// Lock identifies the lock file the build used.
type Lock struct {
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Package is one Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	SHA256  string `json:"sha256,omitempty"`
}

// Encode returns the bytes of m's manifest.json: indented by two spaces,
// fields in declaration order, map keys sorted, and a final newline.
func Encode(m *Manifest) ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// Decode parses the bytes of a manifest.json. It checks only that they
// are JSON of the right shape: a reader that needs a field checks it.
func Decode(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Write writes m as dir's manifest.json and returns the bytes written
// (SHA256SUMS records their sha256).
func Write(dir string, m *Manifest) ([]byte, error) {
	data, err := Encode(m)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
		return nil, err
	}
	return data, nil
}

// Read reads the manifest.json of the build output folder dir. When the
// file cannot be read, the error is os.ReadFile's *fs.PathError (dir is
// not a build folder); when it does not decode, the error names the file.
func Read(dir string) (*Manifest, error) {
	path := filepath.Join(dir, FileName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
