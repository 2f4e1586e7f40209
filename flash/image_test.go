package flash

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pibake/pibake/disk/bmap"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/release"
)

// testImage is a pibake disk built the way builder/disk_stage.go builds
// one, from the disk packages (no Debian): the layout's MBR and EBRs, three
// FAT32 volumes, a random "root filesystem" in both root slots and the
// data partition's first MiB; then NAME.img.zst and NAME.bmap by release.
type testImage struct {
	dir, img, zst, bmap string
	lay                 layout.Layout
	m                   *bmap.Map
}

var testEpoch = time.Date(2024, 1, 2, 3, 4, 6, 0, time.UTC)

func makeImage(t testing.TB) *testImage {
	t.Helper()
	return makeImageFor(t, "pi4")
}

// slotInfo is the pibake.json a build writes on each boot slot.
func slotInfo(board string) []byte {
	return []byte(`{"image": "t", "version": "1.2.3", "board": "` + board + `", "env": "prod", "bootloader": "uboot"}` + "\n")
}

// makeImageFor makes a test image whose slots say they are for board
// ("" for slots without pibake.json).
func makeImageFor(t testing.TB, board string) *testImage {
	t.Helper()
	lay, err := layout.Compute(layout.Sizes{Bootsel: 36 << 20, Boot: 36 << 20, Root: 4 << 20, Data: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ti := &testImage{dir: dir, img: filepath.Join(dir, "t.img"), zst: filepath.Join(dir, "t.img.zst"), bmap: filepath.Join(dir, "t.bmap"), lay: lay}
	f, err := os.Create(ti.img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(lay.DiskSize); err != nil {
		t.Fatal(err)
	}
	rec := &bmap.Recorder{W: f}
	if err := mbr.Write(rec, lay.MBR(0x1234abcd), uint64(lay.DiskSize/mbr.SectorSize)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	root := random(3<<20 + 1234)
	for _, p := range lay.Parts {
		var err error
		switch p.Name {
		case layout.Bootsel:
			err = fat.Write(partAt(rec, p), fat.Options{Size: p.Size, Label: "BOOTSEL", Time: testEpoch}, []fat.File{{Path: "u-boot.bin", Data: random(500000)}, {Path: "boot.scr", Data: []byte("script")}}, nil)
		case layout.BootA, layout.BootB:
			files := []fat.File{{Path: "vmlinuz", Data: random(2 << 20)}, {Path: "cmdline.txt", Data: []byte("root=PARTUUID=1234abcd-05\n")}, {Path: "dtbs/x.dtb", Data: random(9000)}}
			if board != "" {
				files = append(files, fat.File{Path: "pibake.json", Data: slotInfo(board)})
			}
			err = fat.Write(partAt(rec, p), fat.Options{Size: p.Size, Label: "PIBOOT", Time: testEpoch}, files, nil)
		case layout.RootA, layout.RootB:
			_, err = rec.WriteAt(root, p.Offset)
		case layout.Data:
			_, err = rec.WriteAt(make([]byte, 1<<20), p.Offset)
		}
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := release.Write(context.Background(), dir, "t.img", rec.Written)
	if err != nil {
		t.Fatal(err)
	}
	ti.m = res.Map
	return ti
}

type offsetWriter struct {
	w interface {
		WriteAt([]byte, int64) (int, error)
	}
	off int64
}

func (o offsetWriter) WriteAt(p []byte, off int64) (int, error) { return o.w.WriteAt(p, o.off+off) }

func partAt(w interface {
	WriteAt([]byte, int64) (int, error)
}, p layout.Part) offsetWriter {
	return offsetWriter{w, p.Offset}
}

// garbage makes a file of size bytes of 0xFF, as an erased or used card.
func garbage(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 0xff
	}
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			t.Fatal(err)
		}
	}
}
