package flash

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/manifest"
)

// TestFlashRefusesNonImages: what is not a pibake image is refused with
// a clear error, before the target is opened: the card (here a file
// that does not exist yet) is never created or written.
func TestFlashRefusesNonImages(t *testing.T) {
	ti := makeImage(t)
	m := manifest.Manifest{Format: manifest.Format, Image: "t", Version: "1", Board: "pi4", Disk: manifest.Disk{File: "t.img"}}
	if _, err := manifest.Write(ti.dir, &m); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty.img")
	os.WriteFile(empty, nil, 0o644)
	emptyZst := filepath.Join(t.TempDir(), "empty.img.zst")
	os.WriteFile(emptyZst, nil, 0o644)
	foreign := filepath.Join(t.TempDir(), "foreign.img")
	garbage(t, foreign, 8<<20)
	// pibake's layout, but no pibake.json: an image of another tool, or a
	// card read back after a first boot emptied it.
	bare := makeImageFor(t, "")
	for _, c := range []struct{ image, want string }{
		{filepath.Join(ti.dir, manifest.FileName), "is the build's record, not an image"},
		{ti.bmap, "is a block map, not an image"},
		{empty, "is empty"},
		{emptyZst, "is empty"},
		{ti.dir, "is a folder"},
		{foreign, "not a pibake image"},
		{bare.zst, "not a pibake image"},
		{bare.img, "not a pibake image"},
	} {
		disk := filepath.Join(t.TempDir(), "card")
		_, err := Flash(context.Background(), Options{Image: c.image, Device: disk})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("flash %s: %v, want an error saying %q", c.image, err, c.want)
		}
		if _, serr := os.Stat(disk); serr == nil {
			t.Errorf("flash %s: the target was created", c.image)
		}
	}
}

// TestFlashShowsImage: flash says what it writes before it writes.
func TestFlashShowsImage(t *testing.T) {
	ti := makeImage(t)
	disk := filepath.Join(t.TempDir(), "card")
	var say strings.Builder
	res, err := Flash(context.Background(), Options{Image: ti.zst, Device: disk, Announce: &say})
	if err != nil {
		t.Fatal(err)
	}
	if want := "t 1.2.3, board pi4, environment prod"; !strings.Contains(say.String(), want) || res.Info.String() != want {
		t.Errorf("flash said %q (info %s), want %q", say.String(), res.Info, want)
	}
}

// TestCheckBoard: an emulated board's image is refused for a card, not
// for an image file.
func TestCheckBoard(t *testing.T) {
	for _, c := range []struct {
		board string
		block bool
		ok    bool
	}{{"pi4", true, true}, {"pi3", true, true}, {"qemu", true, false}, {"qemu", false, true}, {"pi9", true, false}} {
		err := checkBoard(&ImageInfo{Image: "t", Version: "1", Board: c.board}, c.block)
		if (err == nil) != c.ok || (c.board == "qemu" && !c.ok && !errors.Is(err, ErrEmulated)) {
			t.Errorf("board %s on a card %v: %v", c.board, c.block, err)
		}
	}
	// A qemu image read from its slot says so.
	ti := makeImageFor(t, "qemu")
	info, err := ReadImage(ti.zst)
	if err != nil || info.Board != "qemu" || checkBoard(info, true) == nil {
		t.Errorf("a qemu image: %+v, %v", info, err)
	}
}
