// Package inspect reads a pibake disk image back without root or loop
// devices: the partition table, the FAT partitions' files and slot
// descriptions, and each root slot's squashfs superblock, checking the root
// filesystem bytes against the sha256 its boot slot records.
package inspect

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
)

// SlotInfoFile is the slot description on each boot partition.
const SlotInfoFile = "pibake.json"

// Report is what an image holds.
type Report struct {
	Size       int64       `json:"size"`
	Signature  string      `json:"disk_signature"`
	Partitions []Partition `json:"partitions"`
	Slots      []Slot      `json:"slots"`
	Bootsel    []string    `json:"bootsel_files"`
}

// Partition is one partition as found on disk.
type Partition struct {
	Number   int    `json:"number"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	PartUUID string `json:"partuuid"`
	Offset   int64  `json:"offset"`
	Size     int64  `json:"size"`
	Content  string `json:"content"`
}

// Slot is what slot A or B holds.
type Slot struct {
	Name     string          `json:"name"`
	Info     json.RawMessage `json:"info,omitempty"`
	Files    []string        `json:"boot_files"`
	Rootfs   *Squashfs       `json:"rootfs,omitempty"`
	Verified bool            `json:"rootfs_verified"`
	Problem  string          `json:"problem,omitempty"`
}

// Squashfs is the superblock summary of a root slot.
type Squashfs struct {
	Compressor string `json:"compressor"`
	BytesUsed  int64  `json:"bytes_used"`
	Inodes     uint32 `json:"inodes"`
	BlockSize  uint32 `json:"block_size"`
	MkfsTime   uint32 `json:"mkfs_time"`
}

var compressors = map[uint16]string{1: "gzip", 2: "lzma", 3: "lzo", 4: "xz", 5: "lz4", 6: "zstd"}

// ReadSquashfs parses a squashfs 4.0 superblock.
func ReadSquashfs(r io.ReaderAt) (*Squashfs, error) {
	var sb [96]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil {
		return nil, fmt.Errorf("squashfs superblock: %w", err)
	}
	if string(sb[0:4]) != "hsqs" {
		return nil, errors.New("no squashfs superblock")
	}
	le := binary.LittleEndian
	if major := le.Uint16(sb[28:]); major != 4 {
		return nil, fmt.Errorf("squashfs version %d, want 4", major)
	}
	c := compressors[le.Uint16(sb[20:])]
	if c == "" {
		c = fmt.Sprintf("unknown(%d)", le.Uint16(sb[20:]))
	}
	return &Squashfs{Compressor: c, Inodes: le.Uint32(sb[4:]), MkfsTime: le.Uint32(sb[8:]), BlockSize: le.Uint32(sb[12:]), BytesUsed: int64(le.Uint64(sb[40:]))}, nil
}

// Image inspects a disk image of the given size.
func Image(r io.ReaderAt, size int64) (*Report, error) {
	lay, sig, err := Layout(r, size)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	rep := &Report{Size: size, Signature: fmt.Sprintf("0x%08x", sig)}
	for _, p := range lay.Parts {
		if p.Offset+p.Size > size {
			return nil, fmt.Errorf("inspect: partition %d (%s) ends at %d, past the end of the image (%d bytes): truncated image?", p.Number, p.Name, p.Offset+p.Size, size)
		}
		rep.Partitions = append(rep.Partitions, Partition{Number: p.Number, Name: p.Name, Type: fmt.Sprintf("0x%02x", p.Type),
			PartUUID: mbr.PartUUID(sig, p.Number), Offset: p.Offset, Size: p.Size, Content: content(io.NewSectionReader(r, p.Offset, p.Size), p.Size)})
	}
	if p, ok := lay.Part(layout.Bootsel); ok {
		if fsys, err := fat.Open(io.NewSectionReader(r, p.Offset, p.Size), p.Size); err == nil {
			rep.Bootsel = listFiles(fsys)
		}
	}
	for _, s := range bootchain.Slots() {
		bp, _ := lay.Part(s.Boot())
		rp, _ := lay.Part(s.Root())
		rep.Slots = append(rep.Slots, slot(r, s.String(), bp, rp))
	}
	return rep, nil
}

func content(r io.ReaderAt, size int64) string {
	if sq, err := ReadSquashfs(r); err == nil {
		return fmt.Sprintf("squashfs (%s, %d bytes used)", sq.Compressor, sq.BytesUsed)
	}
	if fsys, err := fat.Open(r, size); err == nil {
		return fmt.Sprintf("FAT32 %q", fsys.Label())
	}
	var sb [2]byte
	if _, err := r.ReadAt(sb[:], 1024+0x38); err == nil && binary.LittleEndian.Uint16(sb[:]) == 0xEF53 {
		return "ext4"
	}
	return "empty (formatted on first boot)"
}

func listFiles(fsys *fat.FS) []string {
	var out []string
	_ = fsys.Walk(func(p string, isDir bool, size int64) error {
		if !isDir {
			out = append(out, fmt.Sprintf("%s (%d)", p, size))
		}
		return nil
	})
	return out
}

func slot(r io.ReaderAt, name string, bp, rp layout.Part) Slot {
	s := Slot{Name: name}
	fsys, err := fat.Open(io.NewSectionReader(r, bp.Offset, bp.Size), bp.Size)
	if err != nil {
		s.Problem = fmt.Sprintf("boot partition %s: %v", bp.Name, err)
		return s
	}
	s.Files = listFiles(fsys)
	raw, err := fsys.ReadFile(SlotInfoFile)
	if errors.Is(err, fs.ErrNotExist) {
		s.Problem = fmt.Sprintf("%s has no %s: empty or foreign slot", bp.Name, SlotInfoFile)
		return s
	}
	if err != nil || !json.Valid(raw) {
		s.Problem = fmt.Sprintf("%s: unreadable %s: %v", bp.Name, SlotInfoFile, err)
		return s
	}
	s.Info = json.RawMessage(raw)
	var info struct {
		SHA256 string `json:"rootfs_sha256"`
		Size   int64  `json:"rootfs_size"`
	}
	_ = json.Unmarshal(raw, &info)
	root := io.NewSectionReader(r, rp.Offset, rp.Size)
	sq, err := ReadSquashfs(root)
	if err != nil {
		s.Problem = fmt.Sprintf("%s: %v", rp.Name, err)
		return s
	}
	s.Rootfs = sq
	if info.Size <= 0 || info.Size > rp.Size {
		s.Problem = fmt.Sprintf("%s records a root filesystem of %d bytes, partition %s has %d", SlotInfoFile, info.Size, rp.Name, rp.Size)
		return s
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, rp.Offset, info.Size)); err != nil {
		s.Problem = fmt.Sprintf("%s: %v", rp.Name, err)
		return s
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != info.SHA256 {
		s.Problem = fmt.Sprintf("%s: sha256 %s does not match %s in %s: corrupt or mismatched slot", rp.Name, got, info.SHA256, SlotInfoFile)
		return s
	}
	s.Verified = true
	return s
}

// Layout reads the partition table of an image and recognises pibake's
// layout in it.
func Layout(r io.ReaderAt, size int64) (layout.Layout, uint32, error) {
	sig, entries, err := mbr.Read(r)
	if err != nil {
		return layout.Layout{}, 0, fmt.Errorf("partition table: %w", err)
	}
	lay, err := layout.FromMBR(entries, size)
	return lay, sig, err
}

// FAT opens the FAT filesystem of the named partition of an image.
func FAT(r io.ReaderAt, size int64, part string) (*fat.FS, layout.Part, error) {
	lay, _, err := Layout(r, size)
	if err != nil {
		return nil, layout.Part{}, err
	}
	p, ok := lay.Part(part)
	if !ok {
		return nil, p, fmt.Errorf("no partition %s", part)
	}
	fsys, err := fat.Open(io.NewSectionReader(r, p.Offset, p.Size), p.Size)
	if err != nil {
		return nil, p, fmt.Errorf("%s: %w", part, err)
	}
	return fsys, p, nil
}
