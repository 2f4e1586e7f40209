package manifest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pibake/pibake/manifest"
)

// full sets every field, so the golden file pins every name and their order.
func full() *manifest.Manifest {
	return &manifest.Manifest{Format: manifest.Format, Image: "demo", Version: "1.2.3", Board: "pi4", Env: "default", Bootloader: "uboot", SourceDateEpoch: 1795392000,
		Disk:         manifest.Disk{File: "demo.img", Size: 1 << 30, SHA256: "aa", Signature: "0x12345678"},
		Partitions:   []manifest.Partition{{Number: 1, Name: "bootsel", Type: "0x0c", FS: "vfat", PartUUID: "12345678-01", Offset: 4 << 20, Size: 16 << 20, SHA256: "bb"}},
		Kernel:       "6.12.0-rpi",
		Rootfs:       manifest.Rootfs{Size: 300 << 20, SHA256: "cc", Compressor: "zstd"},
		Initramfs:    manifest.Initramfs{Size: 4096, Go: "go1.24.1"},
		Agent:        manifest.Agent{Version: "v1.0-3-gabc", SHA256: "ab"},
		Tools:        map[string]string{"go": "go1.24.1", "tar2sqfs": "tar2sqfs 1.3", "mmdebstrap": "1.5"},
		Lock:         manifest.Lock{File: "demo.lock", SHA256: "dd"},
		Packages:     []manifest.Package{{Name: "base-files", Version: "13", Arch: "arm64", SHA256: "ee"}, {Name: "local", Version: "1", Arch: "all"}},
		BootPackages: []manifest.Package{{Name: "raspi-firmware", Version: "1:1.2", Arch: "all", SHA256: "ff"}},
		Containers: []manifest.Container{{Name: "hello", Source: "go:containers/hello", Digest: "sha256:11", Bytes: 123, Entries: 4, Runtime: "podman"},
			{Name: "web", Source: "docker.io/x", Digest: "sha256:22", Bytes: 9, Entries: 1, Runtime: "docker", ImageID: "sha256:33"}},
		Release: []manifest.File{{File: "demo.img.zst", Size: 77, SHA256: "44"}, {File: "demo.bmap", Size: 5, SHA256: "55"}},
	}
}

// TestEncodeGolden pins the bytes: testdata holds what builder.Manifest
// encoded to before the types moved here (SHA256SUMS records them).
func TestEncodeGolden(t *testing.T) {
	for _, c := range []struct {
		golden string
		m      *manifest.Manifest
	}{{"full.json", full()}, {"empty.json", &manifest.Manifest{}}} {
		want, err := os.ReadFile(filepath.Join("testdata", c.golden))
		if err != nil {
			t.Fatal(err)
		}
		got, err := manifest.Encode(c.m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoded\n%s\nwant\n%s", c.golden, got, want)
		}
	}
}

func TestJSONStable(t *testing.T) {
	// Field names are an interface: keep them.
	b, _ := json.Marshal(manifest.Manifest{})
	for _, k := range []string{`"image"`, `"version"`, `"board"`, `"env"`, `"partitions"`, `"packages"`, `"lock"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("manifest has no %s", k)
		}
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	data, err := manifest.Write(dir, full())
	if err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, manifest.FileName))
	if !bytes.Equal(data, onDisk) {
		t.Errorf("Write returned bytes other than it wrote")
	}
	m, err := manifest.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, full()) {
		t.Errorf("read back %+v, want %+v", m, full())
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := manifest.Read(dir)
	var pe *fs.PathError
	if !errors.As(err, &pe) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no manifest.json: %v, want the *fs.PathError of a missing file", err)
	}
	path := filepath.Join(dir, manifest.FileName)
	if err := os.WriteFile(path, []byte("{\"format\": \"one\"}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = manifest.Read(dir)
	if err == nil || errors.As(err, &pe) || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("bad manifest.json: %v, want an error naming %s", err, path)
	}
}
