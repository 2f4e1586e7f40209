package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Options describes the filesystem Write creates.
type Options struct {
	// Size is the total filesystem size in bytes, a multiple of 512.
	Size int64
	// Label is the volume label: at most 11 printable ASCII characters,
	// none of "*+,./:;<=>?[\]| and not starting with a space. It is stored
	// upper-case and space-padded in the boot sector and as a volume-label
	// entry in the root directory. Empty means no label ("NO NAME").
	Label string
	// VolumeID is the volume serial number.
	VolumeID uint32
	// Time is the timestamp of every directory entry (creation,
	// modification and access). It is converted to UTC and clamped to the
	// FAT range 1980-01-01 00:00:00 to 2107-12-31 23:59:58; seconds are
	// rounded down to even. The zero Time gives 1980-01-01.
	Time time.Time
	// HiddenSectors is stored in BPB_HiddSec: the LBA of the partition's
	// first sector, as mkfs.vfat records it. Zero is fine for the
	// Raspberry Pi firmware.
	HiddenSectors uint32
}

const (
	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20
	attrLFN       = 0x0f

	fatEOC   = 0x0fffffff // end of chain
	fatMedia = 0x0ffffff8 // FAT[0]: media byte 0xF8 in the low bits
)

// Write writes a complete FAT32 filesystem of opts.Size bytes to w, starting
// at offset 0 of w (use io.NewOffsetWriter for a partition). It writes the
// reserved sectors (boot sector, FSInfo and their backups at sectors 6 and 7,
// zeros elsewhere), both FATs in full, every directory cluster, all file data
// with the tail of each last cluster zeroed, and the final sector of the
// volume. Free data clusters are otherwise left unwritten.
//
// Files and dirs may be given in any order; the output depends only on their
// contents. Write fails if the size is not valid for FAT32, if the content
// does not fit, if a name is invalid for FAT, or if a path is given twice
// (compared case-insensitively) or used both as a file and a directory.
func Write(w io.WriterAt, opts Options, files []File, dirs []Dir) error {
	label, hasLabel, err := packLabel(opts.Label)
	if err != nil {
		return err
	}
	g, err := newGeometry(opts.Size)
	if err != nil {
		return err
	}
	t, err := buildTree(files, dirs, hasLabel)
	if err != nil {
		return err
	}
	need := t.clustersFor(g.clusterSize(), hasLabel)
	if need > uint64(g.clusters) {
		msg := fmt.Sprintf("fat: content does not fit: it needs %d clusters (%d bytes) but a %d-byte filesystem has %d clusters (%d bytes)",
			need, int64(need)*g.clusterSize(), opts.Size, g.clusters, int64(g.clusters)*g.clusterSize())
		if minSize, err := MinSize(files, dirs); err == nil {
			msg += fmt.Sprintf("; the smallest filesystem that fits is %d bytes", minSize)
		}
		return errors.New(msg)
	}
	next := t.allocate()
	wr := &writer{w: w, g: g}
	date, clock := fatStamp(opts.Time)
	wr.date, wr.time = date, clock

	wr.reserved(opts, label, next)
	wr.fats(t, next)
	for _, d := range t.dirs {
		wr.dir(d, label, hasLabel)
	}
	for _, f := range t.files {
		if f.nCluster > 0 {
			off := g.clusterOffset(f.first)
			wr.at(f.data, off, f)
			wr.zeros(off+int64(len(f.data)), int64(f.nCluster)*g.clusterSize()-int64(len(f.data)), f)
		}
	}
	// Make sure the last sector exists, so that a plain image file has its
	// full length and tools that probe the end of the volume can read it.
	if g.clusterOffset(next) < opts.Size {
		wr.zeros(opts.Size-sectorSize, sectorSize, nil)
	}
	return wr.err
}

// writer carries the state of one Write and its first error.
type writer struct {
	w          io.WriterAt
	g          geometry
	date, time uint16
	zero       []byte
	err        error
}

// at writes p at off; what names the node being written, if any.
func (wr *writer) at(p []byte, off int64, what *node) {
	if wr.err != nil || len(p) == 0 {
		return
	}
	if _, err := wr.w.WriteAt(p, off); err != nil {
		switch {
		case what == nil:
			wr.err = fmt.Errorf("fat: writing %d bytes at offset %d: %w", len(p), off, err)
		case what.isDir:
			wr.err = fmt.Errorf("fat: directory %q: writing at offset %d: %w", what.path(), off, err)
		default:
			wr.err = fmt.Errorf("fat: file %q: writing at offset %d: %w", what.path(), off, err)
		}
	}
}

// zeros writes n zero bytes at off.
func (wr *writer) zeros(off, n int64, what *node) {
	if wr.zero == nil {
		wr.zero = make([]byte, 128<<10)
	}
	for n > 0 && wr.err == nil {
		k := min(n, int64(len(wr.zero)))
		wr.at(wr.zero[:k], off, what)
		off += k
		n -= k
	}
}

// reserved writes all 32 reserved sectors: boot sector, FSInfo, their
// copies at sectors 6 and 7, and zeros in between.
func (wr *writer) reserved(opts Options, label [11]byte, next uint32) {
	g := wr.g
	buf := make([]byte, reservedSectors*sectorSize)
	bs := buf[:sectorSize]
	copy(bs[0:], []byte{0xeb, 0x58, 0x90}) // jmp short 0x5a; nop
	copy(bs[3:11], "PIBAKE  ")
	le := binary.LittleEndian
	le.PutUint16(bs[11:], sectorSize)
	bs[13] = byte(g.secPerClus)
	le.PutUint16(bs[14:], reservedSectors)
	bs[16] = numFATs
	// 17: root entry count, 19: 16-bit sector count, 22: 16-bit FAT
	// size are all zero on FAT32.
	bs[21] = 0xf8              // media: fixed disk
	le.PutUint16(bs[24:], 63)  // sectors per track (informational)
	le.PutUint16(bs[26:], 255) // heads (informational)
	le.PutUint32(bs[28:], opts.HiddenSectors)
	le.PutUint32(bs[32:], g.totalSectors)
	le.PutUint32(bs[36:], g.fatSectors)
	// 40: flags 0 (FATs mirrored), 42: version 0.0.
	le.PutUint32(bs[44:], 2) // root directory cluster
	le.PutUint16(bs[48:], 1) // FSInfo sector
	le.PutUint16(bs[50:], 6) // backup boot sector
	bs[64] = 0x80            // drive number
	bs[66] = 0x29            // extended boot signature
	le.PutUint32(bs[67:], opts.VolumeID)
	copy(bs[71:82], label[:])
	copy(bs[82:90], "FAT32   ")
	// Boot code: int 0x18 (no bootable disk, try the next device), then
	// halt forever.
	copy(bs[90:], []byte{0xcd, 0x18, 0xf4, 0xeb, 0xfd})
	bs[510], bs[511] = 0x55, 0xaa

	fsi := buf[sectorSize : 2*sectorSize]
	le.PutUint32(fsi[0:], 0x41615252)
	le.PutUint32(fsi[484:], 0x61417272)
	le.PutUint32(fsi[488:], g.clusters-(next-2)) // free clusters
	nextFree := uint32(0xffffffff)
	if next <= g.clusters+1 {
		nextFree = next
	}
	le.PutUint32(fsi[492:], nextFree)
	le.PutUint32(fsi[508:], 0xaa550000)

	copy(buf[6*sectorSize:], bs)
	copy(buf[7*sectorSize:], fsi)
	wr.at(buf, 0, nil)
}

// fats writes both FATs: the used prefix built in memory, the rest zeros.
func (wr *writer) fats(t *tree, next uint32) {
	used := make([]byte, int64(next)*fatEntrySize)
	le := binary.LittleEndian
	le.PutUint32(used[0:], fatMedia)
	le.PutUint32(used[4:], fatEOC) // clean shutdown, no I/O errors
	chain := func(n *node) {
		for i := uint32(0); i < n.nCluster; i++ {
			c := n.first + i
			v := c + 1
			if i == n.nCluster-1 {
				v = fatEOC
			}
			le.PutUint32(used[int64(c)*fatEntrySize:], v)
		}
	}
	for _, d := range t.dirs {
		chain(d)
	}
	for _, f := range t.files {
		chain(f)
	}
	size := int64(wr.g.fatSectors) * sectorSize
	for i := range numFATs {
		off := wr.g.fatOffset(i)
		wr.at(used, off, nil)
		wr.zeros(off+int64(len(used)), size-int64(len(used)), nil)
	}
}

// dir writes the clusters of one directory.
func (wr *writer) dir(d *node, label [11]byte, hasLabel bool) {
	buf := make([]byte, int64(d.nCluster)*wr.g.clusterSize())
	pos := 0
	if d.parent == nil {
		if hasLabel {
			wr.entry(buf[pos:], label, attrVolumeID, 0, 0)
			pos += dirEntrySize
		}
	} else {
		wr.entry(buf[pos:], packShort(".", ""), attrDirectory, d.first, 0)
		pos += dirEntrySize
		parent := d.parent.first
		if d.parent.parent == nil {
			parent = 0 // ".." of a top-level directory names the root as 0
		}
		wr.entry(buf[pos:], packShort("..", ""), attrDirectory, parent, 0)
		pos += dirEntrySize
	}
	for _, c := range d.children {
		if c.lfn {
			n := lfnSlots(c.name)
			putLFN(buf[pos:], c.name, c.short)
			pos += n * dirEntrySize
		}
		attr, size := byte(attrArchive), uint32(len(c.data))
		if c.isDir {
			attr, size = attrDirectory, 0
		}
		wr.entry(buf[pos:], c.short, attr, c.first, size)
		pos += dirEntrySize
	}
	wr.at(buf, wr.g.clusterOffset(d.first), d)
}

// entry fills one 32-byte short directory entry.
func (wr *writer) entry(e []byte, name [11]byte, attr byte, cluster, size uint32) {
	le := binary.LittleEndian
	copy(e[0:11], name[:])
	e[11] = attr
	// 12: case flags 0, 13: creation time tenths 0.
	le.PutUint16(e[14:], wr.time)
	le.PutUint16(e[16:], wr.date)
	le.PutUint16(e[18:], wr.date) // last access date
	le.PutUint16(e[20:], uint16(cluster>>16))
	le.PutUint16(e[22:], wr.time)
	le.PutUint16(e[24:], wr.date)
	le.PutUint16(e[26:], uint16(cluster))
	le.PutUint32(e[28:], size)
}

// fatStamp converts t to FAT date and time fields.
func fatStamp(t time.Time) (date, clock uint16) {
	first := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2107, 12, 31, 23, 59, 59, 0, time.UTC)
	t = t.UTC()
	if t.Before(first) {
		t = first
	}
	if t.After(last) {
		t = last
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	clock = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	return date, clock
}

// packLabel validates a volume label and returns its 11-byte form.
func packLabel(s string) (label [11]byte, ok bool, err error) {
	label = [11]byte([]byte("NO NAME    "))
	s = strings.TrimRight(s, " ")
	if s == "" {
		return label, false, nil
	}
	if len(s) > 11 {
		return label, false, fmt.Errorf("fat: label %q is longer than 11 characters", s)
	}
	if s[0] == ' ' {
		return label, false, fmt.Errorf("fat: label %q starts with a space", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || strings.IndexByte(`"*+,./:;<=>?[\]|`, c) >= 0 {
			return label, false, fmt.Errorf("fat: label %q contains %q, which is not allowed in a FAT label", s, c)
		}
	}
	label = packShort("", "")
	copy(label[:], asciiUpper(s))
	return label, true, nil
}
