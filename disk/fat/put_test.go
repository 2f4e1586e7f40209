package fat

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/internal/hosttool"
)

// putAndCheck puts name into the image file, then checks it with the
// package's reader, fsck.vfat -n and (when want is set) mtype.
func putAndCheck(t *testing.T, img, name string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if err := PutFile(f, st.Size(), name, data, testTime); err != nil {
		t.Fatalf("PutFile %s: %v", name, err)
	}
	fsys, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	got, err := fsys.ReadFile(name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading %s back: %d bytes (%v), want %d", name, len(got), err, len(data))
	}
	fsck(t, img)
	if p, ok := hosttool.Find("mtype"); ok {
		cmd := exec.Command(p, "-i", img, "::/"+name)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "LC_ALL=C.UTF-8")
		out, err := cmd.Output()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("mtype %s: %d bytes (%v), want %d", name, len(out), err, len(data))
		}
	}
}

func TestPutFile(t *testing.T) {
	files, dirs := testTree()
	img := writeImage(t, testOptions(testSize), files, dirs)
	// Add, replace with more clusters, replace with fewer, then with an
	// empty file, and once by another case of the name.
	putAndCheck(t, img, "pibake-provision.yaml", []byte("hostname: box-1\n"))
	putAndCheck(t, img, "pibake-provision.yaml", randomBytes(5000, 9))
	putAndCheck(t, img, "PIBAKE-PROVISION.YAML", []byte("hostname: box-2\n"))
	putAndCheck(t, img, "pibake-provision.yaml", nil)
	putAndCheck(t, img, "pibake-provision.yaml", []byte("hostname: box-3\n"))
	// An existing 8.3 file is replaced in place of the writer's.
	putAndCheck(t, img, "config.txt", []byte("arm_64bit=1\n"))
	// Enough new names to grow the root directory by clusters.
	for i := range 40 {
		putAndCheck(t, img, fmt.Sprintf("extra file number %02d.txt", i), []byte(strings.Repeat("x", i*100)))
	}
	// Everything the writer put there is still intact.
	f, _ := os.Open(img)
	defer f.Close()
	fsys, err := Open(f, testSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range files {
		if want.Path == "config.txt" {
			continue
		}
		if got, err := fsys.ReadFile(want.Path); err != nil || !bytes.Equal(got, want.Data) {
			t.Fatalf("%s changed (%v)", want.Path, err)
		}
	}
	if got, _ := fsys.ReadFile("pibake-provision.yaml"); string(got) != "hostname: box-3\n" {
		t.Errorf("provision file reads %q", got)
	}
}

// TestPutFileMkfs changes a volume made by mkfs.vfat and filled by mcopy:
// PutFile must not assume pibake's own writer.
func TestPutFileMkfs(t *testing.T) {
	mkfs := hosttool.Need(t, "mkfs.vfat", "dosfstools")
	mcopy := hosttool.Need(t, "mcopy", "mtools")
	img := filepath.Join(t.TempDir(), "vfat.img")
	if out, err := exec.Command("truncate", "-s", "64M", img).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command(mkfs, "-F", "32", "-n", "BOOTSEL", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v %s", err, out)
	}
	src := filepath.Join(t.TempDir(), "u-boot.bin")
	os.WriteFile(src, randomBytes(300000, 3), 0o644)
	cmd := exec.Command(mcopy, "-i", img, src, "::/u-boot.bin")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, out)
	}
	putAndCheck(t, img, "pibake-provision.yaml", []byte("hostname: from-mkfs\n"))
	putAndCheck(t, img, "pibake-provision.yaml", randomBytes(70000, 4))
}

func TestPutFileRefuses(t *testing.T) {
	files, dirs := testTree()
	disk := make(memDisk, testSize)
	if err := Write(disk, testOptions(testSize), files, dirs); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		name string
		data []byte
	}{
		"a directory":      {"overlays", []byte("x")},
		"a path":           {"a/b.txt", []byte("x")},
		"a forbidden name": {"what?.txt", []byte("x")},
		"too big":          {"huge.bin", make([]byte, testSize)},
	} {
		if err := PutFile(disk, testSize, c.name, c.data, testTime); err == nil {
			t.Errorf("%s: PutFile %q succeeded", name, c.name)
		}
	}
	if err := PutFile(make(memDisk, 1<<20), 1<<20, "x.txt", nil, testTime); err == nil {
		t.Error("PutFile on a disk with no FAT succeeded")
	}
}
