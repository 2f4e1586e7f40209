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

	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/bmap/bmapcheck"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/internal/hosttool"
)

// checkDisk checks a flashed disk (a file or a device): every mapped range
// against the bmap, the table with sfdisk -V, each FAT with fsck.vfat -n
// (on a copy of the partition) and the provisioning file if want is set.
func checkDisk(t *testing.T, disk string, ti *testImage, provision []byte) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := ti.m
	if provision != nil {
		// bootsel changed after the write: check the other ranges.
		p, _ := ti.lay.Part(layout.Bootsel)
		m = &bmap.Map{ImageSize: ti.m.ImageSize, BlockSize: ti.m.BlockSize}
		for _, r := range ti.m.Ranges {
			if off, n := ti.m.Span(r); off+n <= p.Offset || off >= p.Offset+p.Size {
				m.Ranges = append(m.Ranges, r)
			}
		}
	}
	if err := bmapcheck.Verify(m, f); err != nil {
		t.Fatalf("read-back of the mapped ranges: %v", err)
	}
	sfdisk := hosttool.Need(t, "sfdisk", "fdisk")
	if out, err := exec.Command(sfdisk, "-V", disk).CombinedOutput(); err != nil {
		t.Fatalf("sfdisk -V: %v\n%s", err, out)
	}
	dump, err := exec.Command(sfdisk, "--dump", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v\n%s", err, dump)
	}
	if !strings.Contains(string(dump), "label-id: 0x1234abcd") || strings.Count(string(dump), "start=") != 7 {
		t.Fatalf("sfdisk --dump:\n%s", dump)
	}
	fsck := hosttool.Need(t, "fsck.vfat", "dosfstools")
	for _, name := range []string{layout.Bootsel, layout.BootA, layout.BootB} {
		p, _ := ti.lay.Part(name)
		buf := make([]byte, p.Size)
		if _, err := f.ReadAt(buf, p.Offset); err != nil {
			t.Fatal(err)
		}
		part := filepath.Join(t.TempDir(), name+".vfat")
		if err := os.WriteFile(part, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(fsck, "-n", part).CombinedOutput()
		if err != nil || bytes.Contains(out, []byte("Invalid")) || bytes.Contains(out, []byte("wrong")) {
			t.Fatalf("fsck.vfat -n %s: %v\n%s", name, err, out)
		}
		if name != layout.Bootsel || provision == nil {
			continue
		}
		fsys, err := fat.Open(bytes.NewReader(buf), p.Size)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := fsys.ReadFile(ProvisionName); err != nil || !bytes.Equal(got, provision) {
			t.Fatalf("%s on bootsel: %q (%v)", ProvisionName, got, err)
		}
		if mtype, ok := hosttool.Find("mtype"); ok {
			cmd := exec.Command(mtype, "-i", part, "::/"+ProvisionName)
			cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
			if out, err := cmd.Output(); err != nil || !bytes.Equal(out, provision) {
				t.Fatalf("mtype %s: %q (%v)", ProvisionName, out, err)
			}
		}
	}
}

// unmappedUntouched checks the blocks the map leaves out still hold 0xFF.
func unmappedUntouched(t *testing.T, disk string, ti *testImage) {
	t.Helper()
	data, err := os.ReadFile(disk)
	if err != nil {
		t.Fatal(err)
	}
	var pos int64
	for _, r := range append(ti.m.Ranges, bmap.Range{First: ti.m.Blocks()}) {
		off := r.First * ti.m.BlockSize
		for i := pos; i < off && i < int64(len(data)); i++ {
			if data[i] != 0xff {
				t.Fatalf("byte %d is outside the map but was written (%#x)", i, data[i])
			}
		}
		pos = (r.Last + 1) * ti.m.BlockSize
	}
}

func TestFlashFile(t *testing.T) {
	ti := makeImage(t)
	for _, img := range []string{ti.img, ti.zst} {
		disk := filepath.Join(t.TempDir(), "card")
		garbage(t, disk, ti.m.ImageSize)
		var progress bytes.Buffer
		res, err := Flash(context.Background(), Options{Image: img, Device: disk, Progress: &progress})
		if err != nil {
			t.Fatalf("%s: %v", img, err)
		}
		if res.Written != ti.m.MappedBytes() || res.Bmap != ti.bmap {
			t.Errorf("%s: wrote %d bytes by %q, want %d by %s", img, res.Written, res.Bmap, ti.m.MappedBytes(), ti.bmap)
		}
		if !strings.Contains(progress.String(), "write") || !strings.Contains(progress.String(), "verify") {
			t.Errorf("progress:\n%s", progress.String())
		}
		checkDisk(t, disk, ti, nil)
		unmappedUntouched(t, disk, ti)
		t.Logf("%s: %d of %d bytes written, verified by %s", filepath.Base(img), res.Written, res.ImageSize, res.Verify)
	}
}

func TestFlashProvision(t *testing.T) {
	ti := makeImage(t)
	disk := filepath.Join(t.TempDir(), "card")
	garbage(t, disk, ti.m.ImageSize)
	prov := []byte("hostname: box-17\n")
	if _, err := Flash(context.Background(), Options{Image: ti.zst, Device: disk, Provision: prov, Time: testEpoch}); err != nil {
		t.Fatal(err)
	}
	checkDisk(t, disk, ti, prov)
	// The harness's way: put it onto a copy of the image.
	f, err := os.OpenFile(ti.img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := PutProvision(f, ti.m.ImageSize, []byte("hostname: again\n"), testEpoch); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{{}, {0xff, 0xfe}, make([]byte, MaxProvisionSize+1)} {
		if err := PutProvision(f, ti.m.ImageSize, bad, testEpoch); !errors.Is(err, ErrProvision) {
			t.Errorf("%d bytes: %v, want ErrProvision", len(bad), err)
		}
	}
}

func TestFlashNoBmap(t *testing.T) {
	ti := makeImage(t)
	os.Remove(ti.bmap)
	disk := filepath.Join(t.TempDir(), "card")
	garbage(t, disk, ti.m.ImageSize)
	res, err := Flash(context.Background(), Options{Image: ti.zst, Device: disk})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != ti.m.ImageSize || res.Bmap != "" {
		t.Errorf("wrote %d of %d bytes by %q", res.Written, ti.m.ImageSize, res.Bmap)
	}
	got, _ := os.ReadFile(disk)
	want, _ := os.ReadFile(ti.img)
	if !bytes.Equal(got, want) {
		t.Error("without a bmap the disk is not the image")
	}
}

func TestFlashRefusesMismatch(t *testing.T) {
	ti := makeImage(t)
	other := makeImage(t)
	disk := filepath.Join(t.TempDir(), "card")

	// One mapped byte of the image changed: caught as its range is written.
	garbage(t, disk, ti.m.ImageSize)
	f, _ := os.OpenFile(ti.img, os.O_RDWR, 0)
	off, _ := ti.m.Span(ti.m.Ranges[len(ti.m.Ranges)/2])
	var one [1]byte
	f.ReadAt(one[:], off)
	one[0] ^= 0x55
	f.WriteAt(one[:], off)
	f.Close()
	if _, err := Flash(context.Background(), Options{Image: ti.img, Device: disk}); !errors.Is(err, ErrMismatch) {
		t.Errorf("a changed image: %v, want ErrMismatch", err)
	} else if !strings.Contains(err.Error(), "partial image") {
		t.Errorf("the error does not say the disk holds a partial image: %v", err)
	}

	// A map of another size: refused before a byte is written.
	bigger := makeImageSized(t, 8<<20)
	garbage(t, disk, ti.m.ImageSize)
	if _, err := Flash(context.Background(), Options{Image: other.zst, Bmap: bigger, Device: disk}); !errors.Is(err, ErrMismatch) {
		t.Errorf("a map of another size: %v, want ErrMismatch", err)
	}
	unmappedAll(t, disk)

	// A map that is not a bmap.
	junk := filepath.Join(t.TempDir(), "junk.bmap")
	os.WriteFile(junk, []byte("<bmap version='2.0'>"), 0o644)
	if _, err := Flash(context.Background(), Options{Image: other.zst, Bmap: junk, Device: disk}); !errors.Is(err, bmap.ErrFormat) {
		t.Errorf("a broken map: %v, want bmap.ErrFormat", err)
	}
}

// makeImageSized writes a bmap for a zero image of size bytes.
func makeImageSized(t *testing.T, size int64) string {
	m, err := bmap.Create(bytes.NewReader(make([]byte, size)), size, bmap.Extents{{Off: 0, Len: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other.bmap")
	if err := os.WriteFile(p, m.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// unmappedAll checks nothing was written: every byte is still 0xFF.
func unmappedAll(t *testing.T, disk string) {
	t.Helper()
	data, _ := os.ReadFile(disk)
	for i, b := range data {
		if b != 0xff {
			t.Fatalf("the disk was written (byte %d is %#x)", i, b)
		}
	}
}

func TestFlashRefusesDamagedZst(t *testing.T) {
	ti := makeImage(t)
	zst, _ := os.ReadFile(ti.zst)
	for name, bad := range map[string][]byte{
		"truncated": zst[:len(zst)*2/3],
		"cut tail":  zst[:len(zst)-3],
		"tampered":  flip(zst, len(zst)/2),
		"not zstd":  []byte("hello, this is not a zstd frame at all"),
	} {
		img := filepath.Join(t.TempDir(), "t.img.zst")
		os.WriteFile(img, bad, 0o644)
		disk := filepath.Join(t.TempDir(), "card")
		_, err := Flash(context.Background(), Options{Image: img, Bmap: ti.bmap, Device: disk})
		if !errors.Is(err, ErrDamaged) && !(name == "tampered" && errors.Is(err, ErrMismatch)) {
			t.Errorf("%s: %v, want ErrDamaged", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x10
	return c
}

func TestFlashRefusesMissingDevice(t *testing.T) {
	ti := makeImage(t)
	const missing = "/dev/pibake-no-such-disk"
	if _, err := Flash(context.Background(), Options{Image: ti.zst, Device: missing}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing /dev path: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		os.Remove(missing)
		t.Error("flash created a file in /dev")
	}
}

// TestCheckProvisionParses: a file the device would refuse never reaches
// a card.
func TestCheckProvisionParses(t *testing.T) {
	if err := CheckProvision([]byte("hostname: box-7\n")); err != nil {
		t.Fatalf("a good file: %v", err)
	}
	err := CheckProvision([]byte("hostname: box-7\nhostnme: typo\n"))
	if !errors.Is(err, ErrProvision) || !strings.Contains(err.Error(), ":2: unknown field: did you mean hostname?") || strings.Contains(err.Error(), "hostnme") {
		t.Fatalf("a file with an unknown field: %v", err)
	}
}
