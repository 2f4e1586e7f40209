package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// ReadWriterAt is a filesystem that PutFile can change in place.
type ReadWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// PutFile adds a file to the root directory of the FAT32 filesystem of
// size bytes in rw, or replaces the file of that name (compared without
// regard to case, by long or short name), with t as its timestamp. Unlike
// Write it changes an existing volume, written by anyone: it frees the old
// file's clusters, allocates the new ones from the free clusters (one
// contiguous run when there is one), writes every FAT copy and the
// FSInfo free count, and grows the root directory by a cluster when it
// has no room for the entries. It refuses a name that is a directory or
// the volume label. It is not safe against a power cut half way: use it
// on a card or an image file before it boots, not on a running system.
func PutFile(rw ReadWriterAt, size int64, name string, data []byte, t time.Time) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("fat: put %q: %w", name, err)
	}
	if int64(len(data)) >= 1<<32 {
		return fmt.Errorf("fat: put %q: %d bytes is more than FAT allows", name, len(data))
	}
	v, err := openVolume(rw, size)
	if err != nil {
		return fmt.Errorf("fat: put %q: %w", name, err)
	}
	if err := v.put(name, data, t); err != nil {
		return fmt.Errorf("fat: put %q: %w", name, err)
	}
	return nil
}

// volume is an opened FAT32 volume with its FAT in memory.
type volume struct {
	rw          ReadWriterAt
	fs          *FS
	boot        []byte
	fatOffsets  []int64 // the FAT copies to write
	fat         []byte  // the FAT in use
	rootChain   []uint32
	root        []byte // the root directory's clusters
	changedRoot bool
}

func openVolume(rw ReadWriterAt, size int64) (*volume, error) {
	fs, err := Open(rw, size)
	if err != nil {
		return nil, err
	}
	v := &volume{rw: rw, fs: fs, boot: make([]byte, sectorSize)}
	if _, err := rw.ReadAt(v.boot, 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	bps := int64(le.Uint16(v.boot[11:]))
	reserved, nFATs, fatSize := int64(le.Uint16(v.boot[14:])), int64(v.boot[16]), int64(le.Uint32(v.boot[36:]))
	if le.Uint16(v.boot[40:])&0x80 != 0 {
		v.fatOffsets = []int64{fs.fatStart} // mirroring off: only the active FAT
	} else {
		for i := range nFATs {
			v.fatOffsets = append(v.fatOffsets, (reserved+i*fatSize)*bps)
		}
	}
	v.fat = make([]byte, (int64(fs.clusters)+2)*fatEntrySize)
	if _, err := rw.ReadAt(v.fat, fs.fatStart); err != nil {
		return nil, fmt.Errorf("reading the FAT: %w", err)
	}
	for c := fs.root; ; {
		if c < 2 || c > fs.clusters+1 || len(v.rootChain) > int(fs.clusters) {
			return nil, fmt.Errorf("the root directory's cluster chain reaches invalid cluster %#x", c)
		}
		v.rootChain = append(v.rootChain, c)
		if c = v.get(c); c >= 0x0ffffff8 {
			break
		}
	}
	v.root = make([]byte, int64(len(v.rootChain))*fs.clusterSize)
	for i, c := range v.rootChain {
		if _, err := rw.ReadAt(v.root[int64(i)*fs.clusterSize:][:fs.clusterSize], v.clusterOffset(c)); err != nil {
			return nil, fmt.Errorf("reading the root directory: %w", err)
		}
	}
	return v, nil
}

func (v *volume) get(c uint32) uint32 { return binary.LittleEndian.Uint32(v.fat[c*4:]) & 0x0fffffff }

func (v *volume) set(c, val uint32) {
	old := binary.LittleEndian.Uint32(v.fat[c*4:])
	binary.LittleEndian.PutUint32(v.fat[c*4:], old&0xf0000000|val&0x0fffffff)
}

func (v *volume) clusterOffset(c uint32) int64 {
	return v.fs.dataStart + int64(c-2)*v.fs.clusterSize
}

// slot is a short-name entry of the root directory with the long-name
// entries in front of it.
type slot struct {
	first, pos int // index of the first LFN entry (or pos) and of the short entry
	name       string
	short      [11]byte
	attr       byte
}

func decodeLFN(u []uint16) string {
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// scan lists the root directory's entries by position.
func (v *volume) scan() []slot {
	var out []slot
	lfnStart, lfnValid, lfnNext := -1, false, 0
	var lfn []uint16
	var lfnSum byte
	for i := 0; (i+1)*dirEntrySize <= len(v.root); i++ {
		e := v.root[i*dirEntrySize:][:dirEntrySize]
		if e[0] == 0x00 {
			break
		}
		if e[0] == 0xe5 {
			lfnValid = false
			continue
		}
		if e[11]&0x3f == attrLFN {
			seq := int(e[0] & 0x1f)
			if e[0]&0x40 != 0 {
				lfn = make([]uint16, seq*lfnCharsPer)
				lfnStart, lfnSum, lfnNext, lfnValid = i, e[13], seq, seq > 0
			}
			if !lfnValid || seq != lfnNext || e[13] != lfnSum {
				lfnValid = false
				continue
			}
			for k, off := range lfnOffsets {
				lfn[(seq-1)*lfnCharsPer+k] = binary.LittleEndian.Uint16(e[off:])
			}
			lfnNext--
			continue
		}
		s := slot{first: i, pos: i, attr: e[11]}
		copy(s.short[:], e[:11])
		s.name = shortString(s.short, e[12])
		if lfnValid && lfnNext == 0 && shortChecksum(s.short) == lfnSum {
			s.first = lfnStart
			s.name = decodeLFN(lfn)
		}
		lfnValid = false
		out = append(out, s)
	}
	return out
}

func (v *volume) put(name string, data []byte, t time.Time) error {
	entries := v.scan()
	used := map[[11]byte]bool{}
	for _, s := range entries {
		if s.attr&attrVolumeID != 0 {
			continue // the volume label
		}
		if !strings.EqualFold(s.name, name) && !strings.EqualFold(shortString(s.short, 0), name) {
			used[s.short] = true
			continue
		}
		if s.attr&attrDirectory != 0 {
			return errors.New("the root directory has a directory of that name")
		}
		e := v.root[s.pos*dirEntrySize:]
		first := uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:]))
		if err := v.free(first); err != nil {
			return err
		}
		for i := s.first; i <= s.pos; i++ {
			v.root[i*dirEntrySize] = 0xe5
		}
		v.changedRoot = true
	}
	short, needLFN, err := shortFor(name, used)
	if err != nil {
		return err
	}
	n := 1
	if needLFN {
		n += lfnSlots(name)
	}
	at, err := v.freeSlots(n)
	if err != nil {
		return err
	}
	clusterSize := v.fs.clusterSize
	count := uint32((int64(len(data)) + clusterSize - 1) / clusterSize)
	chain, err := v.alloc(count)
	if err != nil {
		return fmt.Errorf("%w (%d bytes)", err, len(data))
	}
	buf := make([]byte, clusterSize)
	for i, c := range chain {
		clear(buf)
		copy(buf, data[min(int64(len(data)), int64(i)*clusterSize):])
		if _, err := v.rw.WriteAt(buf, v.clusterOffset(c)); err != nil {
			return fmt.Errorf("writing cluster %d: %w", c, err)
		}
	}
	e := v.root[at*dirEntrySize:]
	if needLFN {
		putLFN(e, name, short)
		e = e[(n-1)*dirEntrySize:]
	}
	var first uint32
	if len(chain) > 0 {
		first = chain[0]
	}
	wr := &writer{}
	wr.date, wr.time = fatStamp(t)
	wr.entry(e[:dirEntrySize], short, attrArchive, first, uint32(len(data)))
	v.changedRoot = true
	return v.flush()
}

// shortFor picks the short name for name, as Write does: the name itself
// when it is a valid 8.3 name that is free, else a "~N" alias.
func shortFor(name string, used map[[11]byte]bool) (short [11]byte, lfn bool, err error) {
	base, ext, exact := basisName(name)
	if s := packShort(base, ext); exact && !used[s] {
		return s, name != shortDisplay(s), nil
	}
	for i := 1; i <= maxShortTail; i++ {
		tail := "~" + strconv.Itoa(i)
		b := base
		if len(b)+len(tail) > 8 {
			b = b[:8-len(tail)]
		}
		if s := packShort(b+tail, ext); !used[s] {
			return s, true, nil
		}
	}
	return short, false, errors.New("no free short name")
}

// free releases the cluster chain starting at c (0 for an empty file).
func (v *volume) free(c uint32) error {
	for n := 0; c >= 2 && c <= v.fs.clusters+1; n++ {
		if n > int(v.fs.clusters) {
			return fmt.Errorf("the cluster chain loops (at cluster %d)", c)
		}
		next := v.get(c)
		v.set(c, 0)
		if next >= 0x0ffffff8 || next == 0 {
			return nil
		}
		c = next
	}
	if c != 0 {
		return fmt.Errorf("the old file's cluster chain reaches invalid cluster %#x", c)
	}
	return nil
}

// alloc takes n free clusters, one contiguous run if there is one, chains
// them and returns them in order.
func (v *volume) alloc(n uint32) ([]uint32, error) {
	if n == 0 {
		return nil, nil
	}
	last := v.fs.clusters + 1
	var picked []uint32
	run := uint32(0)
	for c := uint32(2); c <= last; c++ {
		if v.get(c) != 0 {
			run = 0
			continue
		}
		if run++; run == n {
			for k := c - n + 1; k <= c; k++ {
				picked = append(picked, k)
			}
			break
		}
	}
	if picked == nil { // fragmented: take the first free ones
		for c := uint32(2); c <= last && uint32(len(picked)) < n; c++ {
			if v.get(c) == 0 {
				picked = append(picked, c)
			}
		}
	}
	if uint32(len(picked)) < n {
		return nil, fmt.Errorf("the volume has %d free clusters, the file needs %d", len(picked), n)
	}
	for i, c := range picked {
		next := uint32(fatEOC)
		if i+1 < len(picked) {
			next = picked[i+1]
		}
		v.set(c, next)
	}
	return picked, nil
}

// freeSlots returns the index of n consecutive free root directory
// entries, growing the root directory by a zeroed cluster if needed.
func (v *volume) freeSlots(n int) (int, error) {
	for {
		run, total := 0, len(v.root)/dirEntrySize
		for i := 0; i < total; i++ {
			if b := v.root[i*dirEntrySize]; b == 0x00 || b == 0xe5 {
				if run++; run == n {
					return i - n + 1, nil
				}
				continue
			}
			run = 0
		}
		if total+n > maxDirEntries {
			return 0, fmt.Errorf("the root directory is full (%d entries)", total)
		}
		c, err := v.alloc(1)
		if err != nil {
			return 0, fmt.Errorf("growing the root directory: %w", err)
		}
		v.set(v.rootChain[len(v.rootChain)-1], c[0])
		v.rootChain = append(v.rootChain, c[0])
		v.root = append(v.root, make([]byte, v.fs.clusterSize)...)
	}
}

// flush writes the root directory, every FAT copy and the FSInfo sectors.
func (v *volume) flush() error {
	// The FAT before the directory: no entry ever names clusters the FAT
	// does not give it.
	for _, off := range v.fatOffsets {
		if _, err := v.rw.WriteAt(v.fat, off); err != nil {
			return fmt.Errorf("writing the FAT at %d: %w", off, err)
		}
	}
	if v.changedRoot {
		cs := v.fs.clusterSize
		for i, c := range v.rootChain {
			if _, err := v.rw.WriteAt(v.root[int64(i)*cs:][:cs], v.clusterOffset(c)); err != nil {
				return fmt.Errorf("writing the root directory: %w", err)
			}
		}
	}
	le := binary.LittleEndian
	var freeCount uint32
	next := uint32(0xffffffff)
	for c := uint32(2); c <= v.fs.clusters+1; c++ {
		if v.get(c) == 0 {
			freeCount++
			if next == 0xffffffff {
				next = c
			}
		}
	}
	bps := int64(le.Uint16(v.boot[11:]))
	fsInfo := int64(le.Uint16(v.boot[48:]))
	backup := int64(le.Uint16(v.boot[50:]))
	for _, sec := range []int64{fsInfo, backup + fsInfo} {
		if sec == 0 || sec == 0xffff || sec >= int64(le.Uint16(v.boot[14:])) || (sec != fsInfo && (backup == 0 || backup == 0xffff)) {
			continue
		}
		buf := make([]byte, sectorSize)
		if _, err := v.rw.ReadAt(buf, sec*bps); err != nil {
			return fmt.Errorf("reading FSInfo: %w", err)
		}
		if le.Uint32(buf[0:]) != 0x41615252 || le.Uint32(buf[484:]) != 0x61417272 {
			continue // no FSInfo there: nothing to keep up to date
		}
		le.PutUint32(buf[488:], freeCount)
		le.PutUint32(buf[492:], next)
		if _, err := v.rw.WriteAt(buf, sec*bps); err != nil {
			return fmt.Errorf("writing FSInfo: %w", err)
		}
	}
	return nil
}
