package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/release"
)

// smallImage writes dir/t.img, a disk of pibake's layout whose boot
// slots hold pibake.json (the root slots are empty), and dir/t.img.zst.
func smallImage(t *testing.T, dir string) (img, zst string) {
	t.Helper()
	lay, err := layout.Compute(layout.Sizes{Bootsel: 36 << 20, Boot: 36 << 20, Root: 4 << 20, Data: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(dir, "t.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(lay.DiskSize)
	if err := mbr.Write(f, lay.MBR(0x1234abcd), uint64(lay.DiskSize/mbr.SectorSize)); err != nil {
		t.Fatal(err)
	}
	info := []byte(`{"image": "t", "version": "1.2.3", "board": "pi4", "env": "prod"}` + "\n")
	for _, p := range lay.Parts {
		if p.Name == layout.BootA || p.Name == layout.BootB || p.Name == layout.Bootsel {
			w := io.NewOffsetWriter(f, p.Offset)
			if err := fat.Write(w, fat.Options{Size: p.Size, Label: "PIBOOT", Time: time.Unix(0, 0)}, []fat.File{{Path: "pibake.json", Data: info}}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	zst = img + ".zst"
	out, err := os.Create(zst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := release.Compress(context.Background(), out, f, lay.DiskSize); err != nil {
		t.Fatal(err)
	}
	return img, zst
}

// TestInspectZst: inspect reads NAME.img.zst, which flash takes, as it
// reads NAME.img.
func TestInspectZst(t *testing.T) {
	dir := t.TempDir()
	img, zst := smallImage(t, dir)
	for _, asJSON := range []bool{false, true} {
		args := func(p string) []string {
			if asJSON {
				return []string{"inspect", "--json", p}
			}
			return []string{"inspect", p}
		}
		rawOut, _, rawErr := runCmd(args(img)...)
		zstOut, _, zstErr := runCmd(args(zst)...)
		if strings.ReplaceAll(zstOut, zst, img) != rawOut || (rawErr == nil) != (zstErr == nil) || !strings.Contains(rawOut, "1.2.3") {
			t.Errorf("inspect (json %v) of the .zst: %v\n%s\nof the image: %v\n%s", asJSON, zstErr, zstOut, rawErr, rawOut)
		}
	}
}

// TestInspectEmpty: an empty or cut input is named, never a bare EOF.
func TestInspectEmpty(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "e.img")
	os.WriteFile(empty, nil, 0o644)
	short := filepath.Join(dir, "s.img")
	os.WriteFile(short, []byte("short"), 0o644)
	for p, want := range map[string]string{empty: "is empty", short: "5 bytes"} {
		_, _, err := runCmd("inspect", p)
		if err == nil || !strings.Contains(err.Error(), want) || strings.HasSuffix(err.Error(), ": EOF") {
			t.Errorf("inspect %s: %v, want an error saying %q", p, err, want)
		}
	}
}
