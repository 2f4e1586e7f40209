package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"unicode/utf16"
)

// FS is a read-only view of a FAT32 filesystem. It is safe for concurrent
// use.
type FS struct {
	r           io.ReaderAt
	sectorSize  int64
	clusterSize int64
	fatStart    int64 // byte offset of the FAT in use
	dataStart   int64 // byte offset of cluster 2
	clusters    uint32
	root        uint32
	label       string

	mu       sync.Mutex
	cacheOff int64 // offset of the cached FAT sector, -1 if none
	cache    []byte
}

// Open reads the boot sector of a FAT32 filesystem of size bytes from r and
// checks that it is one: boot signature 0x55AA, a FAT32 BIOS parameter block
// with sane fields, at least 65525 clusters, and everything inside size.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	bs := make([]byte, sectorSize)
	if _, err := r.ReadAt(bs, 0); err != nil {
		return nil, fmt.Errorf("fat: reading boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xaa {
		return nil, errors.New("fat: boot sector has no 0x55AA signature")
	}
	le := binary.LittleEndian
	bps := int64(le.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(le.Uint16(bs[14:]))
	nFATs := int64(bs[16])
	total := int64(le.Uint32(bs[32:]))
	fatSize := int64(le.Uint32(bs[36:]))
	switch {
	case bps < 512 || bps > 4096 || bps&(bps-1) != 0:
		return nil, fmt.Errorf("fat: invalid bytes per sector %d", bps)
	case spc == 0 || spc&(spc-1) != 0:
		return nil, fmt.Errorf("fat: invalid sectors per cluster %d", spc)
	case reserved == 0:
		return nil, errors.New("fat: no reserved sectors")
	case nFATs == 0:
		return nil, errors.New("fat: no FATs")
	case le.Uint16(bs[17:]) != 0 || le.Uint16(bs[19:]) != 0 || le.Uint16(bs[22:]) != 0 || fatSize == 0:
		return nil, errors.New("fat: not a FAT32 boot sector (FAT12/16 fields are set)")
	case total == 0:
		return nil, errors.New("fat: sector count is zero")
	case total*bps > size:
		return nil, fmt.Errorf("fat: filesystem claims %d bytes but only %d are available", total*bps, size)
	}
	dataSec := reserved + nFATs*fatSize
	if dataSec >= total {
		return nil, fmt.Errorf("fat: FATs (%d sectors) leave no room for data in %d sectors", dataSec, total)
	}
	clusters := (total - dataSec) / spc
	if clusters < minClusters {
		return nil, fmt.Errorf("fat: %d clusters is too few for FAT32", clusters)
	}
	if fatSize*bps/fatEntrySize < clusters+2 {
		return nil, fmt.Errorf("fat: FAT of %d sectors cannot map %d clusters", fatSize, clusters)
	}
	active := int64(0)
	if flags := le.Uint16(bs[40:]); flags&0x80 != 0 {
		active = int64(flags & 0x0f) // mirroring off: only this FAT is valid
		if active >= nFATs {
			return nil, fmt.Errorf("fat: active FAT %d does not exist", active)
		}
	}
	f := &FS{
		r:           r,
		sectorSize:  bps,
		clusterSize: spc * bps,
		fatStart:    (reserved + active*fatSize) * bps,
		dataStart:   dataSec * bps,
		clusters:    uint32(clusters),
		root:        le.Uint32(bs[44:]),
		cacheOff:    -1,
	}
	if f.root < 2 || f.root > f.clusters+1 {
		return nil, fmt.Errorf("fat: root directory cluster %d is out of range", f.root)
	}
	if bs[66] == 0x29 {
		f.label = trimLabel(bs[71:82])
	}
	// The root directory's volume-label entry is the authoritative label.
	if _, label, err := f.readDir(f.root, true); err != nil {
		return nil, err
	} else if label != "" {
		f.label = label
	}
	return f, nil
}

func trimLabel(b []byte) string {
	s := strings.TrimRight(string(b), " ")
	if s == "NO NAME" {
		return ""
	}
	return s
}

// Label returns the volume label, or "" if there is none.
func (f *FS) Label() string { return f.label }

// next returns the FAT entry of cluster c.
func (f *FS) next(c uint32) (uint32, error) {
	off := f.fatStart + int64(c)*fatEntrySize
	sec := off - off%f.sectorSize
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cacheOff != sec {
		if f.cache == nil {
			f.cache = make([]byte, f.sectorSize)
		}
		if _, err := f.r.ReadAt(f.cache, sec); err != nil {
			f.cacheOff = -1
			return 0, fmt.Errorf("fat: reading FAT at offset %d: %w", sec, err)
		}
		f.cacheOff = sec
	}
	return binary.LittleEndian.Uint32(f.cache[off-sec:]) & 0x0fffffff, nil
}

// readChain reads the cluster chain starting at first. It stops after
// limit clusters or at the end of the chain, whichever comes first; if
// exact is set, the chain must have at least limit clusters.
func (f *FS) readChain(first uint32, limit int64, exact bool) ([]byte, error) {
	var out []byte
	c := first
	for n := int64(0); n < limit; n++ {
		if c < 2 || c > f.clusters+1 {
			return nil, fmt.Errorf("fat: cluster chain from %d reaches invalid cluster %#x", first, c)
		}
		buf := make([]byte, f.clusterSize)
		if _, err := f.r.ReadAt(buf, f.dataStart+int64(c-2)*f.clusterSize); err != nil {
			return nil, fmt.Errorf("fat: reading cluster %d: %w", c, err)
		}
		out = append(out, buf...)
		nc, err := f.next(c)
		if err != nil {
			return nil, err
		}
		if nc >= 0x0ffffff8 {
			if exact && n+1 < limit {
				return nil, fmt.Errorf("fat: cluster chain from %d ends after %d of %d clusters", first, n+1, limit)
			}
			break
		}
		c = nc
	}
	return out, nil
}

// entry is one parsed directory entry.
type entry struct {
	name    string // long name if present, else the 8.3 name
	short   string
	isDir   bool
	cluster uint32
	size    uint32
}

// readDir lists the directory at cluster c, skipping "." and "..", deleted
// entries and the volume label, which is returned separately if root is set.
func (f *FS) readDir(c uint32, root bool) ([]entry, string, error) {
	limit := maxDirEntries * dirEntrySize / f.clusterSize
	data, err := f.readChain(c, max(limit, 1), false)
	if err != nil {
		return nil, "", err
	}
	var (
		out      []entry
		label    string
		lfn      []uint16 // long name being collected
		lfnSum   byte
		lfnNext  int // sequence number expected next, 0 if none pending
		lfnValid bool
	)
	for pos := 0; pos+dirEntrySize <= len(data); pos += dirEntrySize {
		e := data[pos : pos+dirEntrySize]
		if e[0] == 0x00 {
			break
		}
		if e[0] == 0xe5 {
			lfnValid = false
			continue
		}
		attr := e[11]
		if attr&0x3f == attrLFN {
			seq := int(e[0] & 0x1f)
			if e[0]&0x40 != 0 {
				lfn = make([]uint16, seq*lfnCharsPer)
				lfnSum, lfnNext, lfnValid = e[13], seq, seq > 0
			}
			if !lfnValid || seq != lfnNext || e[13] != lfnSum {
				lfnValid = false
				continue
			}
			for i, off := range lfnOffsets {
				lfn[(seq-1)*lfnCharsPer+i] = binary.LittleEndian.Uint16(e[off:])
			}
			lfnNext--
			continue
		}
		var short [11]byte
		copy(short[:], e[:11])
		long := lfnValid && lfnNext == 0 && shortChecksum(short) == lfnSum
		lfnValid = false
		if attr&attrVolumeID != 0 {
			if root && label == "" {
				label = trimLabel(e[:11])
			}
			continue
		}
		if short[0] == 0x05 {
			short[0] = 0xe5
		}
		if string(short[:]) == ".          " || string(short[:]) == "..         " {
			continue
		}
		ent := entry{
			short:   shortString(short, e[12]),
			isDir:   attr&attrDirectory != 0,
			cluster: uint32(binary.LittleEndian.Uint16(e[20:]))<<16 | uint32(binary.LittleEndian.Uint16(e[26:])),
			size:    binary.LittleEndian.Uint32(e[28:]),
		}
		ent.name = ent.short
		if long {
			if end := slices.Index(lfn, 0); end >= 0 {
				lfn = lfn[:end]
			}
			ent.name = string(utf16.Decode(lfn))
		}
		out = append(out, ent)
	}
	slices.SortStableFunc(out, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	return out, label, nil
}

// shortString renders a short name, applying the Windows NT lower-case
// flags. Bytes above 0x7F are taken as Latin-1, since the code page is
// unknown.
func shortString(n [11]byte, flags byte) string {
	part := func(b []byte, lower bool) string {
		var r []rune
		for _, c := range b {
			if lower && c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			r = append(r, rune(c))
		}
		return strings.TrimRight(string(r), " ")
	}
	base := part(n[:8], flags&0x08 != 0)
	ext := part(n[8:], flags&0x10 != 0)
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// lookup finds the entry for a slash-separated path, case-insensitively and
// by long or short name. The root is returned as a directory entry.
func (f *FS) lookup(p string) (entry, error) {
	cur := entry{isDir: true, cluster: f.root}
	p = strings.Trim(p, "/")
	if p == "" {
		return cur, nil
	}
	for _, part := range strings.Split(p, "/") {
		if !cur.isDir {
			return entry{}, fmt.Errorf("fat: %q: %w", p, fs.ErrNotExist)
		}
		list, _, err := f.readDir(cur.cluster, cur.cluster == f.root)
		if err != nil {
			return entry{}, fmt.Errorf("fat: %q: %w", p, err)
		}
		i := slices.IndexFunc(list, func(e entry) bool {
			return strings.EqualFold(e.name, part) || strings.EqualFold(e.short, part)
		})
		if i < 0 {
			return entry{}, fmt.Errorf("fat: %q: %w", p, fs.ErrNotExist)
		}
		cur = list[i]
		if cur.isDir && cur.cluster == 0 {
			cur.cluster = f.root
		}
	}
	return cur, nil
}

// ReadFile returns the contents of the file at path (slash-separated,
// matched case-insensitively against long and short names). A missing file
// gives an error wrapping fs.ErrNotExist.
func (f *FS) ReadFile(path string) ([]byte, error) {
	e, err := f.lookup(path)
	if err != nil {
		return nil, err
	}
	if e.isDir {
		return nil, fmt.Errorf("fat: %q is a directory", path)
	}
	if e.size == 0 {
		return []byte{}, nil
	}
	n := (int64(e.size) + f.clusterSize - 1) / f.clusterSize
	data, err := f.readChain(e.cluster, n, true)
	if err != nil {
		return nil, fmt.Errorf("fat: file %q: %w", path, err)
	}
	return data[:e.size], nil
}

// Walk calls fn for every file and directory, a directory before its
// contents and siblings sorted by name (byte order of their long names).
// Paths are slash-separated and relative; size is 0 for directories. If fn
// returns fs.SkipDir for a directory, its contents are skipped; any other
// error stops the walk and is returned.
func (f *FS) Walk(fn func(path string, isDir bool, size int64) error) error {
	return f.walk(f.root, "", map[uint32]bool{f.root: true}, fn)
}

func (f *FS) walk(c uint32, prefix string, seen map[uint32]bool, fn func(string, bool, int64) error) error {
	list, _, err := f.readDir(c, c == f.root)
	if err != nil {
		return err
	}
	for _, e := range list {
		p := prefix + e.name
		size := int64(e.size)
		if e.isDir {
			size = 0
		}
		if err := fn(p, e.isDir, size); err != nil {
			if e.isDir && errors.Is(err, fs.SkipDir) {
				continue
			}
			return err
		}
		if !e.isDir {
			continue
		}
		if seen[e.cluster] || e.cluster == 0 {
			return fmt.Errorf("fat: directory %q loops back (cluster %d)", p, e.cluster)
		}
		seen[e.cluster] = true
		if err := f.walk(e.cluster, p+"/", seen, fn); err != nil {
			return err
		}
	}
	return nil
}
