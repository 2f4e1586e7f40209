package flash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/manifest"
)

// TestFlashRefusesTruncatedRaw: a raw image without a bmap is checked
// against the size its own partition table declares, before a byte is
// written: a cut download is not "verified" onto a card.
func TestFlashRefusesTruncatedRaw(t *testing.T) {
	ti := makeImage(t)
	os.Remove(ti.bmap)
	full, _ := os.ReadFile(ti.img)
	for name, size := range map[string]int{
		"cut in the data partition": len(full) - 1<<20,
		"cut in the root slots":     len(full) * 2 / 3,
		"cut before the EBRs":       64 << 10,
		"cut inside the MBR":        300,
	} {
		img := filepath.Join(t.TempDir(), "cut.img")
		os.WriteFile(img, full[:size], 0o644)
		disk := filepath.Join(t.TempDir(), "card")
		garbage(t, disk, int64(len(full)))
		_, err := Flash(context.Background(), Options{Image: img, Device: disk})
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "cut short") {
			t.Errorf("%s: %v, want ErrMismatch saying the image is cut short", name, err)
		}
		unmappedAll(t, disk)
	}
	// The whole image, without a bmap, still flashes.
	disk := filepath.Join(t.TempDir(), "card")
	if _, err := Flash(context.Background(), Options{Image: ti.img, Device: disk}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(disk); !bytes.Equal(got, full) {
		t.Error("the disk is not the image")
	}
}

// TestFlashRawManifest: a raw image next to the manifest.json that names
// it is checked against the manifest's size before writing and its
// sha256 as it is written.
func TestFlashRawManifest(t *testing.T) {
	ti := makeImage(t)
	os.Remove(ti.bmap)
	full, _ := os.ReadFile(ti.img)
	sum := sha256.Sum256(full)
	m := manifest.Manifest{Format: manifest.Format, Image: "t", Version: "1", Board: "qemu",
		Disk: manifest.Disk{File: "t.img", Size: int64(len(full)) + 1<<20, SHA256: hex.EncodeToString(sum[:])}}
	if _, err := manifest.Write(ti.dir, &m); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "card")
	garbage(t, disk, int64(len(full)))
	if _, err := Flash(context.Background(), Options{Image: ti.img, Device: disk}); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("an image shorter than its manifest says: %v", err)
	}
	unmappedAll(t, disk)
	// The right size, one byte changed: the sha256 of what was written
	// is not the manifest's.
	m.Disk.Size = int64(len(full))
	manifest.Write(ti.dir, &m)
	f, _ := os.OpenFile(ti.img, os.O_RDWR, 0)
	f.WriteAt([]byte{full[len(full)/2] ^ 1}, int64(len(full)/2))
	f.Close()
	if _, err := Flash(context.Background(), Options{Image: ti.img, Device: disk}); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("an image changed after its manifest: %v", err)
	}
	f, _ = os.OpenFile(ti.img, os.O_RDWR, 0)
	f.WriteAt(full[len(full)/2:len(full)/2+1], int64(len(full)/2))
	f.Close()
	if _, err := Flash(context.Background(), Options{Image: ti.img, Device: disk}); err != nil {
		t.Errorf("the image its manifest describes: %v", err)
	}
}

// TestFlashRefusesFileUnderDev: under /dev only a block device is a card;
// a regular file there (/dev/shm is RAM) is refused, untouched.
func TestFlashRefusesFileUnderDev(t *testing.T) {
	ti := makeImage(t)
	shm, err := os.MkdirTemp("/dev/shm", "pibake-flash-test-")
	if err != nil {
		t.Skipf("no /dev/shm to test with: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	card := filepath.Join(shm, "card")
	garbage(t, card, ti.m.ImageSize)
	if _, err := Flash(context.Background(), Options{Image: ti.zst, Device: card}); !errors.Is(err, ErrNotDisk) {
		t.Errorf("a regular file under /dev: %v, want ErrNotDisk", err)
	}
	unmappedAll(t, card)
	// Through a symlink from elsewhere too.
	link := filepath.Join(t.TempDir(), "card")
	os.Symlink(card, link)
	if _, err := Flash(context.Background(), Options{Image: ti.zst, Device: link}); !errors.Is(err, ErrNotDisk) {
		t.Errorf("a symlink to a regular file under /dev: %v, want ErrNotDisk", err)
	}
	unmappedAll(t, card)
	// A new file under /dev is never created.
	if _, err := Flash(context.Background(), Options{Image: ti.zst, Device: filepath.Join(shm, "new")}); err == nil {
		t.Error("flash created a file under /dev")
	}
}
