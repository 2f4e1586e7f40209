package flash

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/internal/hosttool"
)

// needReal skips unless PIBAKE_REAL is set (make test sets it); there, a
// missing root or loop device support fails the test.
func needReal(t *testing.T) {
	t.Helper()
	if os.Getenv("PIBAKE_REAL") == "" {
		t.Skip("PIBAKE_REAL is not set: loop device tests run under make test")
	}
	if os.Geteuid() != 0 {
		t.Fatal("PIBAKE_REAL loop device tests need root")
	}
	hosttool.Need(t, "losetup", "mount")
}

// loop attaches a loop device with partition scanning to a new file of
// size bytes of 0xFF and detaches it at the end of the test.
func loop(t *testing.T, size int64) string {
	t.Helper()
	backing := filepath.Join(t.TempDir(), "card")
	garbage(t, backing, size)
	out, err := exec.Command("losetup", "-f", "--show", "-P", backing).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// partNode waits for the kernel's node of partition n of a loop device.
func partNode(t *testing.T, dev string, n int) string {
	t.Helper()
	p := dev + "p" + string(rune('0'+n))
	exec.Command("partx", "-u", dev).Run()
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", p)
	return ""
}

// TestRealLoop flashes to loop devices full of 0xFF: pibake flash from the
// .img.zst, bmaptool copy with pibake's map next to it (the same bytes over
// the mapped ranges), then the refusals that need a real block device.
func TestRealLoop(t *testing.T) {
	needReal(t)
	ti := makeImage(t)
	ctx := context.Background()
	a := loop(t, ti.m.ImageSize+4<<20)
	res, err := Flash(ctx, Options{Image: ti.zst, Device: a})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Verify, "O_DIRECT") || !strings.Contains(res.Verify, "BLKFLSBUF") {
		t.Errorf("read-back on a loop device by %q, want BLKFLSBUF and O_DIRECT", res.Verify)
	}
	checkDisk(t, a, ti, nil)
	unmappedUntouched(t, a, ti)
	t.Logf("pibake flash: %d of %d bytes, verified by %s", res.Written, res.ImageSize, res.Verify)

	bmaptool := hosttool.Need(t, "bmaptool", "bmap-tools")
	hosttool.Need(t, "zstd", "zstd")
	b := loop(t, ti.m.ImageSize+4<<20)
	if out, err := exec.Command(bmaptool, "copy", "--bmap", ti.bmap, ti.zst, b).CombinedOutput(); err != nil {
		t.Fatalf("bmaptool copy: %v\n%s", err, out)
	}
	fa, _ := os.Open(a)
	defer fa.Close()
	fb, _ := os.Open(b)
	defer fb.Close()
	for _, r := range ti.m.Ranges {
		off, n := ti.m.Span(r)
		x, y := make([]byte, n), make([]byte, n)
		fa.ReadAt(x, off)
		fb.ReadAt(y, off)
		if !bytes.Equal(x, y) {
			t.Fatalf("blocks %d-%d differ between pibake flash and bmaptool copy", r.First, r.Last)
		}
	}
	unmappedUntouched(t, b, ti)

	// Again, with a provisioning file: a second flash over the first.
	prov := []byte("hostname: loop-box\n")
	if _, err := Flash(ctx, Options{Image: ti.img, Device: a, Provision: prov, Time: testEpoch}); err != nil {
		t.Fatal(err)
	}
	checkDisk(t, a, ti, prov)

	// A partition instead of the disk.
	p1 := partNode(t, a, 1)
	if _, err := Flash(ctx, Options{Image: ti.zst, Device: p1}); !errors.Is(err, ErrNotDisk) {
		t.Errorf("flash to %s: %v, want ErrNotDisk", p1, err)
	}
	// A mounted partition: ext4 made on boot-b, since a host kernel may
	// lack vfat (the card is written over again anyway).
	p3 := partNode(t, a, 3)
	mkfs := hosttool.Need(t, "mkfs.ext4", "e2fsprogs")
	if out, err := exec.Command(mkfs, "-q", "-F", p3).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", p3, err, out)
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-o", "ro", p3, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", p3, err, out)
	}
	_, err = Flash(ctx, Options{Image: ti.zst, Device: a})
	if out, uerr := exec.Command("umount", mnt).CombinedOutput(); uerr != nil {
		t.Errorf("umount: %v\n%s", uerr, out)
	}
	if !errors.Is(err, ErrMounted) || !strings.Contains(err.Error(), mnt) {
		t.Errorf("flash with %s mounted: %v, want ErrMounted naming %s", p3, err, mnt)
	}
	// Too small.
	small := loop(t, 64<<20)
	if _, err := Flash(ctx, Options{Image: ti.zst, Device: small}); !errors.Is(err, ErrTooSmall) {
		t.Errorf("a 64 MiB disk: %v, want ErrTooSmall", err)
	}
	unmappedAll(t, small)
}
