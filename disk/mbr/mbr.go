package mbr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SectorSize is the only sector size this package handles.
const SectorSize = 512

const (
	signatureOffset = 440 // 4-byte disk signature, then 2 zero bytes
	tableOffset     = 446 // four 16-byte partition entries
	entrySize       = 16
	bootFlag        = 0x80

	typeExtCHS   = 0x05 // used for the links between EBRs
	typeExtLBA   = 0x0F // used for the extended partition in the MBR
	typeExtLinux = 0x85

	maxPrimary = 3
	maxEBRs    = 128     // bound of the EBR walk in Read
	maxSectors = 1 << 32 // 2 TiB of 512-byte sectors

	chsHeads   = 255
	chsSectors = 63
)

// Partition is one primary or logical partition to write.
type Partition struct {
	Type     byte   // e.g. 0x0C FAT32 LBA, 0x83 Linux
	Start    uint64 // first sector (absolute LBA) of the partition's data
	Sectors  uint64 // length in sectors
	Bootable bool
}

// Table describes a whole partition table. See the package documentation
// for how the EBRs of the logical partitions are placed.
type Table struct {
	DiskSignature uint32      // bytes 440..443 of sector 0, little-endian; must not be 0
	Primary       []Partition // 0..3 entries, MBR slots 1..len(Primary)
	Logical       []Partition // if non-empty, an extended partition (0x0F) takes the next MBR slot
	ExtendedStart uint64      // absolute LBA of the extended partition (= the first EBR); ignored without Logical
}

// EBRSector returns the absolute LBA of the EBR describing Logical[i]:
// ExtendedStart for i == 0, otherwise Logical[i].Start minus the distance
// between ExtendedStart and Logical[0].Start. The result is meaningful only
// for tables that Write accepts.
func (t Table) EBRSector(i int) uint64 {
	if i == 0 {
		return t.ExtendedStart
	}
	return t.Logical[i].Start - (t.Logical[0].Start - t.ExtendedStart)
}

// Entry is one partition found by Read.
type Entry struct {
	Number   int // 1..4 primary/extended, 5.. logical (Linux numbering)
	Type     byte
	Start    uint64 // absolute LBA
	Sectors  uint64
	Bootable bool
	Extended bool // the container entry
}

// PartUUID formats the Linux PARTUUID of partition number on an MBR disk
// with the given signature, e.g. "1a2b3c4d-05".
func PartUUID(signature uint32, number int) string {
	return fmt.Sprintf("%08x-%02x", signature, number)
}

// span is a named sector range [start, end) used for overlap checks.
type span struct {
	name, short string
	start, end  uint64
	logical     bool
	extended    bool
}

func primaryName(i int) (string, string) {
	return fmt.Sprintf("primary partition %d (p%d)", i+1, i+1), fmt.Sprintf("p%d", i+1)
}

func logicalName(i int) (string, string) {
	return fmt.Sprintf("logical partition %d (p%d)", i+1, i+5), fmt.Sprintf("p%d", i+5)
}

func isExtended(typ byte) bool {
	return typ == typeExtCHS || typ == typeExtLBA || typ == typeExtLinux
}

func checkPartition(name string, p Partition, diskSectors uint64) error {
	switch {
	case p.Type == 0:
		return fmt.Errorf("mbr: %s has type 0x00, which marks an empty slot", name)
	case isExtended(p.Type):
		return fmt.Errorf("mbr: %s has extended type %#02x; use Table.Logical instead", name, p.Type)
	case p.Sectors == 0:
		return fmt.Errorf("mbr: %s is empty (0 sectors)", name)
	case p.Start == 0:
		return fmt.Errorf("mbr: %s starts at sector 0, which holds the MBR", name)
	case p.Start >= diskSectors || p.Sectors > diskSectors-p.Start:
		return fmt.Errorf("mbr: %s (sectors %d..%d) ends beyond the disk of %d sectors",
			name, p.Start, p.Start+p.Sectors-1, diskSectors)
	}
	return nil
}

// validate checks t against the rules in the package documentation and
// returns the end (exclusive) of the extended partition, 0 if there is none.
func validate(t Table, diskSectors uint64) (uint64, error) {
	if t.DiskSignature == 0 {
		return 0, errors.New("mbr: disk signature 0 is not allowed (Linux PARTUUIDs would be ambiguous)")
	}
	if diskSectors == 0 || diskSectors > maxSectors {
		return 0, fmt.Errorf("mbr: disk size of %d sectors is outside 1..%d (2 TiB)", diskSectors, uint64(maxSectors))
	}
	if len(t.Primary) > maxPrimary {
		return 0, fmt.Errorf("mbr: %d primary partitions requested, at most %d are supported", len(t.Primary), maxPrimary)
	}
	var spans []span
	for i, p := range t.Primary {
		name, short := primaryName(i)
		if err := checkPartition(name, p, diskSectors); err != nil {
			return 0, err
		}
		spans = append(spans, span{name: name, short: short, start: p.Start, end: p.Start + p.Sectors})
	}
	var extEnd uint64
	if len(t.Logical) > 0 {
		extNum := len(t.Primary) + 1
		if t.ExtendedStart == 0 {
			return 0, fmt.Errorf("mbr: extended partition (p%d) starts at sector 0, which holds the MBR", extNum)
		}
		for i, p := range t.Logical {
			name, short := logicalName(i)
			if err := checkPartition(name, p, diskSectors); err != nil {
				return 0, err
			}
			spans = append(spans, span{name: name, short: short, start: p.Start, end: p.Start + p.Sectors, logical: true})
		}
		if t.ExtendedStart >= t.Logical[0].Start {
			return 0, fmt.Errorf("mbr: extended partition (p%d) start %d must be before logical partition 1 (p5) at sector %d",
				extNum, t.ExtendedStart, t.Logical[0].Start)
		}
		gap := t.Logical[0].Start - t.ExtendedStart
		for i := 1; i < len(t.Logical); i++ {
			prev, p := t.Logical[i-1], t.Logical[i]
			prevEnd := prev.Start + prev.Sectors
			if p.Start < prevEnd+gap {
				name, _ := logicalName(i)
				_, prevShort := logicalName(i - 1)
				return 0, fmt.Errorf("mbr: %s at sector %d needs its EBR at sector %d (gap %d), which is not after the end of %s (last sector %d)",
					name, p.Start, int64(p.Start)-int64(gap), gap, prevShort, prevEnd-1)
			}
		}
		last := t.Logical[len(t.Logical)-1]
		extEnd = last.Start + last.Sectors
		spans = append(spans, span{
			name:     fmt.Sprintf("extended partition (p%d)", extNum),
			short:    fmt.Sprintf("p%d", extNum),
			start:    t.ExtendedStart,
			end:      extEnd,
			extended: true,
		})
	}
	for j := range spans {
		for i := 0; i < j; i++ {
			a, b := spans[i], spans[j]
			if (a.logical && b.extended) || (a.extended && b.logical) {
				continue // logical partitions live inside the extended one
			}
			if a.start < b.end && b.start < a.end {
				return 0, fmt.Errorf("mbr: %s (sectors %d..%d) overlaps %s (sectors %d..%d)",
					b.name, b.start, b.end-1, a.short, a.start, a.end-1)
			}
		}
	}
	return extEnd, nil
}

// putCHS stores the CHS address of lba in b (3 bytes) for a 255-head,
// 63-sector geometry, clamped to 1023/254/63.
func putCHS(b []byte, lba uint64) {
	c := lba / (chsHeads * chsSectors)
	h := (lba / chsSectors) % chsHeads
	s := lba%chsSectors + 1
	if c > 1023 {
		c, h, s = 1023, chsHeads-1, chsSectors
	}
	b[0] = byte(h)
	b[1] = byte(s) | byte(c>>8)<<6
	b[2] = byte(c)
}

// putEntry fills partition entry slot (0..3) of sec with p. rel is the
// value stored in the start field (p.Start itself in the MBR, an offset in
// an EBR); p.Start is the absolute LBA it denotes, for the CHS fields.
func putEntry(sec []byte, slot int, p Partition, rel uint64) {
	e := sec[tableOffset+slot*entrySize:][:entrySize]
	if p.Bootable {
		e[0] = bootFlag
	}
	putCHS(e[1:4], p.Start)
	e[4] = p.Type
	putCHS(e[5:8], p.Start+p.Sectors-1)
	binary.LittleEndian.PutUint32(e[8:12], uint32(rel))
	binary.LittleEndian.PutUint32(e[12:16], uint32(p.Sectors))
}

func newSector() []byte {
	sec := make([]byte, SectorSize)
	sec[510], sec[511] = 0x55, 0xAA
	return sec
}

func writeSector(w io.WriterAt, lba uint64, sec []byte) error {
	n, err := w.WriteAt(sec, int64(lba)*SectorSize)
	if err == nil && n < len(sec) {
		err = io.ErrShortWrite
	}
	return err
}

// Write validates t against a disk of diskSectors sectors and writes the
// MBR (sector 0) and every EBR sector to w, and nothing else. The boot code
// area of the MBR is zero. The output depends only on t.
func Write(w io.WriterAt, t Table, diskSectors uint64) error {
	extEnd, err := validate(t, diskSectors)
	if err != nil {
		return err
	}
	mbr := newSector()
	binary.LittleEndian.PutUint32(mbr[signatureOffset:], t.DiskSignature)
	for i, p := range t.Primary {
		putEntry(mbr, i, p, p.Start)
	}
	if len(t.Logical) > 0 {
		ext := Partition{Type: typeExtLBA, Start: t.ExtendedStart, Sectors: extEnd - t.ExtendedStart}
		putEntry(mbr, len(t.Primary), ext, t.ExtendedStart)
	}
	if err := writeSector(w, 0, mbr); err != nil {
		return fmt.Errorf("mbr: writing MBR (sector 0): %w", err)
	}
	for i, p := range t.Logical {
		ebr := t.EBRSector(i)
		sec := newSector()
		putEntry(sec, 0, p, p.Start-ebr)
		if i+1 < len(t.Logical) {
			next := t.Logical[i+1]
			nextEBR := t.EBRSector(i + 1)
			link := Partition{Type: typeExtCHS, Start: nextEBR, Sectors: next.Start + next.Sectors - nextEBR}
			putEntry(sec, 1, link, nextEBR-t.ExtendedStart)
		}
		if err := writeSector(w, ebr, sec); err != nil {
			return fmt.Errorf("mbr: writing EBR of p%d at sector %d: %w", i+5, ebr, err)
		}
	}
	return nil
}

// rawEntry is a decoded 16-byte partition entry.
type rawEntry struct {
	status byte
	typ    byte
	start  uint64 // as stored (relative for EBR entries)
	size   uint64
}

func parseEntry(sec []byte, slot int) rawEntry {
	e := sec[tableOffset+slot*entrySize:][:entrySize]
	return rawEntry{
		status: e[0],
		typ:    e[4],
		start:  uint64(binary.LittleEndian.Uint32(e[8:12])),
		size:   uint64(binary.LittleEndian.Uint32(e[12:16])),
	}
}

func (e rawEntry) empty() bool { return e.typ == 0 || e.size == 0 }

func readSector(r io.ReaderAt, lba uint64) ([]byte, error) {
	sec := make([]byte, SectorSize)
	if _, err := r.ReadAt(sec, int64(lba)*SectorSize); err != nil {
		return nil, err
	}
	return sec, nil
}

func hasSignature(sec []byte) bool { return sec[510] == 0x55 && sec[511] == 0xAA }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Read parses the MBR in sector 0 and follows the EBR chain of the extended
// partition, if any. Entries come in slot order (primaries and the extended
// container) followed by the logical partitions in chain order, numbered
// as Linux does. An all-zero first EBR means an extended partition without
// logical partitions.
func Read(r io.ReaderAt) (signature uint32, entries []Entry, err error) {
	mbr, err := readSector(r, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("mbr: reading MBR (sector 0): %w", err)
	}
	if !hasSignature(mbr) {
		return 0, nil, fmt.Errorf("mbr: sector 0 has no 0x55AA signature (found %02x%02x)", mbr[510], mbr[511])
	}
	signature = binary.LittleEndian.Uint32(mbr[signatureOffset:])
	ext := -1
	for slot := 0; slot < 4; slot++ {
		e := parseEntry(mbr, slot)
		if e.status != 0 && e.status != bootFlag {
			return 0, nil, fmt.Errorf("mbr: sector 0 entry %d has invalid status byte %#02x", slot+1, e.status)
		}
		if e.empty() {
			continue
		}
		entry := Entry{
			Number:   slot + 1,
			Type:     e.typ,
			Start:    e.start,
			Sectors:  e.size,
			Bootable: e.status == bootFlag,
			Extended: isExtended(e.typ),
		}
		if entry.Extended {
			if ext >= 0 {
				return 0, nil, fmt.Errorf("mbr: more than one extended partition (p%d and p%d)", entries[ext].Number, entry.Number)
			}
			if entry.Start == 0 {
				return 0, nil, fmt.Errorf("mbr: extended partition p%d starts at sector 0", entry.Number)
			}
			ext = len(entries)
		}
		entries = append(entries, entry)
	}
	if ext < 0 {
		return signature, entries, nil
	}
	logical, err := readChain(r, entries[ext])
	if err != nil {
		return 0, nil, err
	}
	return signature, append(entries, logical...), nil
}

// readChain walks the EBRs of the extended partition x.
func readChain(r io.ReaderAt, x Entry) ([]Entry, error) {
	extStart, extEnd := x.Start, x.Start+x.Sectors
	var out []Entry
	seen := make(map[uint64]bool)
	number := 5
	for cur := extStart; ; {
		if len(seen) == maxEBRs {
			return nil, fmt.Errorf("mbr: EBR chain of p%d is longer than %d EBRs", x.Number, maxEBRs)
		}
		if seen[cur] {
			return nil, fmt.Errorf("mbr: EBR chain of p%d loops back to sector %d", x.Number, cur)
		}
		seen[cur] = true
		sec, err := readSector(r, cur)
		if err != nil {
			return nil, fmt.Errorf("mbr: reading EBR at sector %d: %w", cur, err)
		}
		if !hasSignature(sec) {
			if cur == extStart && allZero(sec) {
				return nil, nil
			}
			return nil, fmt.Errorf("mbr: EBR at sector %d has no 0x55AA signature", cur)
		}
		var next uint64
		linked := false
		for slot := 0; slot < 4; slot++ {
			e := parseEntry(sec, slot)
			if e.empty() {
				continue
			}
			if isExtended(e.typ) {
				if !linked {
					next, linked = extStart+e.start, true
				}
				continue
			}
			abs := cur + e.start
			if e.start == 0 || abs+e.size > extEnd {
				return nil, fmt.Errorf("mbr: logical partition p%d (sectors %d..%d, from EBR at sector %d) is not inside extended partition p%d after its EBR (sectors %d..%d)",
					number, abs, abs+e.size-1, cur, x.Number, cur+1, extEnd-1)
			}
			out = append(out, Entry{
				Number:   number,
				Type:     e.typ,
				Start:    abs,
				Sectors:  e.size,
				Bootable: e.status&bootFlag != 0,
			})
			number++
		}
		if !linked {
			return out, nil
		}
		if next >= extEnd {
			return nil, fmt.Errorf("mbr: EBR at sector %d links to sector %d, outside extended partition p%d (sectors %d..%d)",
				cur, next, x.Number, extStart, extEnd-1)
		}
		cur = next
	}
}
