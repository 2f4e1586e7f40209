package flash

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/manifest"
	"github.com/pibake/pibake/release"
)

// ErrNotImage means the file given as the image is not a pibake image.
var ErrNotImage = errors.New("not a pibake image")

// ErrEmulated means an image of an emulated board (qemu) was to go on a
// card: no Raspberry Pi boots it.
var ErrEmulated = errors.New("the image is for an emulated board")

// ImageInfo is what a pibake image says of itself: the pibake.json of its
// boot slot A, as the build wrote it.
type ImageInfo struct {
	Image      string `json:"image"`
	Version    string `json:"version"`
	Board      string `json:"board"`
	Env        string `json:"env"`
	Bootloader string `json:"bootloader"`
}

func (i *ImageInfo) String() string {
	env := i.Env
	if env == "" {
		env = "default"
	}
	return fmt.Sprintf("%s %s, board %s, environment %s", i.Image, i.Version, i.Board, env)
}

// ReadImage checks that path is a pibake image, NAME.img or NAME.img.zst
// (a .zst is decompressed only as far as its boot slot A), and returns
// what it says of itself: its partition table must be pibake's layout
// (disk/layout) and its boot slot A must hold pibake.json. A folder, a
// block map, a manifest, an empty or foreign file are refused, each with
// what to give instead.
func ReadImage(path string) (*ImageInfo, error) {
	base := filepath.Base(path)
	switch {
	case base == manifest.FileName || strings.HasSuffix(base, ".json"):
		return nil, fmt.Errorf("flash: %s is the build's record, not an image: %w; give the image next to it (NAME.img.zst)", path, ErrNotImage)
	case strings.HasSuffix(base, release.BmapSuffix):
		return nil, fmt.Errorf("flash: %s is a block map, not an image: %w; give the image (NAME.img.zst): flash finds the map next to it", path, ErrNotImage)
	}
	im, err := release.Open(path)
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	defer im.Close()
	info, err := readInfo(im, im.Size())
	if err != nil {
		return nil, fmt.Errorf("flash: %s: %w", path, err)
	}
	return info, nil
}

// readInfo reads a pibake image's partition table and slot A's
// pibake.json.
func readInfo(r io.ReaderAt, size int64) (*ImageInfo, error) {
	if size < mbr.SectorSize {
		return nil, fmt.Errorf("it is %d bytes, but a disk image starts with a %d-byte partition table: the image is cut short (%w), or %w; download or copy it again", size, mbr.SectorSize, ErrMismatch, ErrNotImage)
	}
	lay, _, err := inspect.Layout(r, size)
	switch {
	case errors.Is(err, release.ErrDamaged):
		return nil, err
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("it is %d bytes, but its partition table goes on past its end (%v): the image is cut short (an interrupted download or copy?): %w; download or copy it again (compare SHA256SUMS)", size, err, ErrMismatch)
	case err != nil:
		return nil, fmt.Errorf("%w: its partition table is not pibake's layout (%v): flash writes only images pibake built", ErrNotImage, err)
	}
	for _, p := range lay.Parts {
		if p.Name != layout.Data && p.Offset+p.Size > size {
			return nil, fmt.Errorf("%w: partition %d (%s) ends at byte %d, past the image's %d: the image is cut short; download or copy it again", ErrMismatch, p.Number, p.Name, p.Offset+p.Size, size)
		}
	}
	fsys, _, err := inspect.FAT(r, size, layout.BootA)
	if errors.Is(err, release.ErrDamaged) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: boot slot A: %v", ErrNotImage, err)
	}
	raw, err := fsys.ReadFile(inspect.SlotInfoFile)
	if err != nil {
		return nil, fmt.Errorf("%w: boot slot A has no %s (%v): flash writes only images pibake built", ErrNotImage, inspect.SlotInfoFile, err)
	}
	var info ImageInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.Image == "" || info.Board == "" {
		return nil, fmt.Errorf("%w: boot slot A's %s names no image and board (%v)", ErrNotImage, inspect.SlotInfoFile, err)
	}
	return &info, nil
}

// checkBoard refuses, for a card (block), an image no Raspberry Pi
// boots: one of an emulated board, or of a board this pibake does not
// know.
func checkBoard(info *ImageInfo, block bool) error {
	if !block {
		return nil
	}
	b, err := firmware.Lookup(info.Board)
	if err != nil {
		return fmt.Errorf("flash: the image is %s: %w: it does not go on a card", info, err)
	}
	if b.Emulated {
		return fmt.Errorf("flash: the image is %s: %w (%s): no Raspberry Pi boots it; run it with 'pibake run', or build for the card's board (pibake build --board pi4 or pi3)", info, ErrEmulated, b.Description)
	}
	return nil
}
