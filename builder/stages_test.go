package builder

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/builder/rootfs"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/manifest"
)

// fakeBuild is a build as the stages before the manifest leave it, with
// no file behind it.
func fakeBuild(t *testing.T) *build {
	t.Helper()
	lay, err := layout.Compute(layout.Sizes{Bootsel: 40 << 20, Boot: 40 << 20, Root: 32 << 20, Data: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	board, err := firmware.Lookup("pi4")
	if err != nil {
		t.Fatal(err)
	}
	lock := &debian.Lock{Packages: []debian.Package{
		{Name: "systemd", Version: "257.9-1", Arch: "arm64", SHA256: "aa", Role: debian.RoleRoot},
		{Name: "libc6", Version: "2.41-1", Arch: "arm64", SHA256: "bb", Role: debian.RoleRoot},
		{Name: "u-boot-rpi", Version: "2025.01-3", Arch: "arm64", SHA256: "cc", Role: debian.RoleBoot},
		{Name: "raspi-firmware", Version: "1.2", Arch: "all", SHA256: "dd", Role: debian.RoleBoot},
	}}
	return &build{
		def:      &imagedef.Definition{Name: "small", Version: "1.2.3", Env: "prod", Bootloader: "uboot"},
		board:    board,
		lockPath: "/src/images/small.lock",
		lock:     lock,
		lockData: []byte("lock bytes\n"),
		epoch:    1700000000,
		lay:      lay,
		sig:      0x0badcafe,
		rf: &rootfsOut{
			res: rootfs.Result{KernelVersion: "6.12.38+deb13-arm64", Packages: []rootfs.Package{
				{Name: "systemd", Version: "257.9-1", Arch: "arm64"},
				{Name: "libc6", Version: "2.41-2", Arch: "arm64"}, // not the locked version: no sha256
			}},
			size: 3 << 20, sha256: "rootsum", compressor: "zstd", tool: "tar2sqfs (fake) 1.3",
			containers: []preparedContainer{{name: "web", source: "go:app", digest: "sha256:ee", runtime: "podman", treeBytes: 42, entries: 7}},
		},
		initrd:    make([]byte, 1234),
		goVersion: "go1.25.0",
		agent:     manifest.Agent{Version: "v1.0-3-gabc", SHA256: "agentsum"},
		imgName:   "small.img",
		sums:      imageSums{disk: "disksum", parts: []string{"p1", "p2", "p3", "p5", "p6", "p7"}},
		release:   []manifest.File{{File: "small.img.zst", Size: 10, SHA256: "zst"}, {File: "small.bmap", Size: 20, SHA256: "bmap"}},
	}
}

// TestManifestOf pins every field the manifest takes from the stages.
func TestManifestOf(t *testing.T) {
	got := fakeBuild(t).manifestOf("mmdebstrap 1.5.7")
	part := func(n int, name, typ, fs string, off, size int64, sum string) manifest.Partition {
		return manifest.Partition{Number: n, Name: name, Type: typ, FS: fs, PartUUID: "0badcafe-0" + string(rune('0'+n)), Offset: off, Size: size, SHA256: sum}
	}
	want := &manifest.Manifest{
		Format: manifest.Format, Image: "small", Version: "1.2.3", Board: "pi4", Env: "prod", Bootloader: "uboot",
		SourceDateEpoch: 1700000000, Kernel: "6.12.38+deb13-arm64",
		Rootfs:    manifest.Rootfs{Size: 3 << 20, SHA256: "rootsum", Compressor: "zstd"},
		Initramfs: manifest.Initramfs{Size: 1234, Go: "go1.25.0"},
		Agent:     manifest.Agent{Version: "v1.0-3-gabc", SHA256: "agentsum"},
		Tools:     map[string]string{"go": "go1.25.0", "tar2sqfs": "tar2sqfs (fake) 1.3", "mmdebstrap": "mmdebstrap 1.5.7"},
		// sha256 of "lock bytes\n"
		Lock:    manifest.Lock{File: "small.lock", SHA256: "85953d0d3c71365c128ebc0c620fa773b1255cebd3efea42dd776c6019bccb96"},
		Release: []manifest.File{{File: "small.img.zst", Size: 10, SHA256: "zst"}, {File: "small.bmap", Size: 20, SHA256: "bmap"}},
		Disk:    manifest.Disk{File: "small.img", Size: 226492416, Signature: "0x0badcafe", SHA256: "disksum"},
		Partitions: []manifest.Partition{
			part(1, "bootsel", "0x0c", "vfat", 4194304, 41943040, "p1"),
			part(2, "boot-a", "0x0c", "vfat", 46137344, 41943040, "p2"),
			part(3, "boot-b", "0x0c", "vfat", 88080384, 41943040, "p3"),
			part(5, "root-a", "0x83", "squashfs", 134217728, 33554432, "p5"),
			part(6, "root-b", "0x83", "squashfs", 171966464, 33554432, "p6"),
			part(7, "data", "0x83", "ext4", 209715200, 16777216, "p7"),
		},
		Packages: []manifest.Package{
			{Name: "systemd", Version: "257.9-1", Arch: "arm64", SHA256: "aa"},
			{Name: "libc6", Version: "2.41-2", Arch: "arm64"},
		},
		BootPackages: []manifest.Package{ // sorted by name
			{Name: "raspi-firmware", Version: "1.2", Arch: "all", SHA256: "dd"},
			{Name: "u-boot-rpi", Version: "2025.01-3", Arch: "arm64", SHA256: "cc"},
		},
		Containers: []manifest.Container{{Name: "web", Source: "go:app", Digest: "sha256:ee", Bytes: 42, Entries: 7, Runtime: "podman"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("manifest\n got %+v\nwant %+v", got, want)
	}
}

// TestWriteManifest: manifest.json, and SHA256SUMS listing the image, its
// release forms and the manifest, in that order.
func TestWriteManifest(t *testing.T) {
	m := fakeBuild(t).manifestOf("mmdebstrap 1.5.7")
	dir := t.TempDir()
	if err := writeManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := "disksum  small.img\nzst  small.img.zst\nbmap  small.bmap\n" + strings.TrimPrefix(debian.Digest(data), "sha256:") + "  manifest.json\n"
	if string(sums) != want {
		t.Errorf("SHA256SUMS\n%s\nwant\n%s", sums, want)
	}
	if !bytes.Equal(checksums(m, data), sums) {
		t.Error("checksums differs from the file written")
	}
}
