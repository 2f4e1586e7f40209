// Package debian resolves, pins, fetches and bootstraps the Debian side of
// an image: the lock file that pins every package by version and sha256,
// a content-addressed cache of .deb files, a local flat repository built
// from exactly the locked packages, and mmdebstrap runs against it.
//
// Limits: arm64 only; resolving needs the host's apt-get and
// debian-archive-keyring; bootstrapping needs mmdebstrap, dpkg-deb and (on a non-arm64 host)
// qemu-user binfmt support; root, or user namespaces for mmdebstrap's
// unshare mode.
package debian

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LockFormat is the version of the lock file layout.
const LockFormat = 1

// Roles of a locked package.
const (
	RoleRoot = "root" // installed into the root filesystem
	RoleBoot = "boot" // unpacked on the build host for boot files (firmware, U-Boot)
)

// BootPackages are fetched for their files, never installed: the Raspberry
// Pi firmware and the U-Boot builds for the Pi and for QEMU.
var BootPackages = []string{"raspi-firmware", "u-boot-rpi", "u-boot-qemu"}

// MinEpoch is the earliest timestamp an image can carry: FAT counts from 1980.
const MinEpoch = 315532800

// ErrStaleLock means the lock does not match the definition's Debian inputs.
var ErrStaleLock = errors.New("lock file is stale")

// Inputs are what a lock resolves: changing any of them needs a new lock.
type Inputs struct {
	Suite      string
	Components []string
	Variant    string
	Packages   []string // names, or name/SUITE-backports for a backport
	// Archives are the suites read beside the main one (trixie-updates,
	// trixie-security, trixie-backports): adding or removing one needs a
	// new lock. Empty for the main suite alone, as every lock before them.
	Archives []string
}

// Digest is the hash recorded in the lock to detect stale locks. The mirror
// is not part of it: locked packages are content-addressed, so any mirror
// serving the same pool works.
func (in Inputs) Digest() string {
	pk := append([]string(nil), in.Packages...)
	sort.Strings(pk)
	bp := append([]string(nil), BootPackages...)
	sort.Strings(bp)
	s := fmt.Sprintf("arch=arm64\nsuite=%s\ncomponents=%s\nvariant=%s\npackages=%s\nboot=%s\n",
		in.Suite, strings.Join(in.Components, ","), in.Variant, strings.Join(pk, ","), strings.Join(bp, ","))
	if len(in.Archives) > 0 {
		ar := append([]string(nil), in.Archives...)
		sort.Strings(ar)
		s += "archives=" + strings.Join(ar, ",") + "\n"
	}
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Package is one pinned .deb.
type Package struct {
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	Arch    string `yaml:"arch"`
	Role    string `yaml:"role"`
	Size    int64  `yaml:"size"`
	SHA256  string `yaml:"sha256"`
	Path    string `yaml:"path"` // pool path relative to the archive's mirror
	// Archive is the suite the package was taken from (trixie-security);
	// a lock without it (every lock before pibake read several archives)
	// means the main suite.
	Archive string `yaml:"archive,omitempty"`
}

// FileName is the conventional .deb file name.
func (p Package) FileName() string {
	v := p.Version
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return fmt.Sprintf("%s_%s_%s.deb", p.Name, v, p.Arch)
}

// Lock pins the Debian packages of one image definition.
type Lock struct {
	Format          int       `yaml:"format"`
	Image           string    `yaml:"image"`
	Inputs          string    `yaml:"inputs"`
	Suite           string    `yaml:"suite"`
	SourceDateEpoch int64     `yaml:"source_date_epoch"`
	Packages        []Package `yaml:"packages"`
	// Containers pins each registry image of the definition to the digest
	// of its linux/arm64 manifest (images from files are checked against
	// theirs too). Not part of Inputs: re-pinning needs no bootstrap.
	Containers []ContainerPin `yaml:"containers,omitempty"`
}

// ContainerPin is one pinned container image.
type ContainerPin struct {
	Name   string `yaml:"name"`
	Image  string `yaml:"image"`
	Digest string `yaml:"digest"`
}

// Container returns the pin of a container whose image reference is
// still image; a changed reference has no pin.
func (l *Lock) Container(name, image string) (ContainerPin, bool) {
	for _, c := range l.Containers {
		if c.Name == name && c.Image == image {
			return c, true
		}
	}
	return ContainerPin{}, false
}

// Check returns ErrStaleLock (wrapped, with what to do) unless the lock
// was made from these inputs.
func (l *Lock) Check(in Inputs, lockPath string) error {
	if l.Format != LockFormat {
		return fmt.Errorf("%s: lock format %d, this pibake reads format %d: run 'pibake lock' to regenerate it", lockPath, l.Format, LockFormat)
	}
	if l.Inputs != in.Digest() {
		return fmt.Errorf("%s: %w: the definition's debian suite, archives (updates, security, backports), components, variant or packages changed since it was made; run 'pibake lock' to resolve them again", lockPath, ErrStaleLock)
	}
	return nil
}

// ArchiveOf is the suite a locked package came from: its archive, or
// the lock's main suite for a package that records none.
func (l *Lock) ArchiveOf(p Package) string {
	if p.Archive == "" {
		return l.Suite
	}
	return p.Archive
}

// Role returns the packages with the given role, sorted by name.
func (l *Lock) Role(role string) []Package {
	var out []Package
	for _, p := range l.Packages {
		if p.Role == role {
			out = append(out, p)
		}
	}
	return out
}

// Find returns the locked package with the given name and role.
func (l *Lock) Find(name, role string) (Package, bool) {
	for _, p := range l.Packages {
		if p.Name == name && p.Role == role {
			return p, true
		}
	}
	return Package{}, false
}

// Marshal renders the lock: one line per package so diffs read well.
func (l *Lock) Marshal() []byte {
	pk := append([]Package(nil), l.Packages...)
	sort.Slice(pk, func(i, j int) bool {
		if pk[i].Role != pk[j].Role {
			return pk[i].Role > pk[j].Role // root before boot
		}
		return pk[i].Name < pk[j].Name
	})
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by 'pibake lock' for images/%s.yaml: do not edit by hand.\n", l.Image)
	fmt.Fprintf(&b, "# Pins every Debian package of the image by version and sha256.\n")
	fmt.Fprintf(&b, "format: %d\nimage: %s\ninputs: %s\nsuite: %s\nsource_date_epoch: %d\npackages:\n", l.Format, l.Image, l.Inputs, l.Suite, l.SourceDateEpoch)
	for _, p := range pk {
		archive := ""
		if p.Archive != "" {
			archive = ", archive: " + p.Archive
		}
		fmt.Fprintf(&b, "  - {name: %s, version: %q, arch: %s, role: %s, size: %d, sha256: %s, path: %s%s}\n",
			p.Name, p.Version, p.Arch, p.Role, p.Size, p.SHA256, p.Path, archive)
	}
	if len(l.Containers) > 0 {
		cs := append([]ContainerPin(nil), l.Containers...)
		sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
		b.WriteString("containers:\n")
		for _, c := range cs {
			fmt.Fprintf(&b, "  - {name: %s, image: %q, digest: %s}\n", c.Name, c.Image, c.Digest)
		}
	}
	return b.Bytes()
}

// ReadLock reads and sanity-checks a lock file.
func ReadLock(path string) (*Lock, []byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("no lock file %s: run 'pibake lock' to resolve and pin the Debian packages: %w", path, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read lock: %w", err)
	}
	var l Lock
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, nil, fmt.Errorf("%s: malformed lock file (%v): run 'pibake lock' to regenerate it", path, err)
	}
	if l.SourceDateEpoch < MinEpoch {
		return nil, nil, fmt.Errorf("%s: source_date_epoch %d is before 1980, which FAT cannot store: run 'pibake lock' to regenerate it", path, l.SourceDateEpoch)
	}
	seen := map[string]bool{}
	for i, p := range l.Packages {
		if p.Name == "" || p.Version == "" || len(p.SHA256) != 64 || p.Size <= 0 || p.Path == "" || strings.Contains(p.Path, "..") || (p.Role != RoleRoot && p.Role != RoleBoot) {
			return nil, nil, fmt.Errorf("%s: package %d (%s) is incomplete or invalid: run 'pibake lock' to regenerate the lock", path, i+1, p.Name)
		}
		if p.Archive != "" && ArchiveKind(l.Suite, p.Archive) == "" {
			return nil, nil, fmt.Errorf("%s: package %s: archive %q is not %s or its -updates, -security or -backports suite: run 'pibake lock' to regenerate the lock", path, p.Name, p.Archive, l.Suite)
		}
		k := p.Role + "/" + p.Name
		if seen[k] {
			return nil, nil, fmt.Errorf("%s: package %s listed twice", path, p.Name)
		}
		seen[k] = true
	}
	for i, c := range l.Containers {
		if c.Name == "" || c.Image == "" || !strings.HasPrefix(c.Digest, "sha256:") || len(c.Digest) != 71 {
			return nil, nil, fmt.Errorf("%s: container %d (%s) is incomplete or invalid: run 'pibake lock --containers' to pin the images again", path, i+1, c.Name)
		}
	}
	return &l, data, nil
}

// Digest returns "sha256:<hex>" of the lock file bytes.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
