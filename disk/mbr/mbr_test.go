package mbr

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/pibake/pibake/internal/hosttool"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const (
	mib        = 1 << 20 / SectorSize // sectors per MiB
	diskSize   = 512 * mib            // 512 MiB image
	testSig    = 0x1a2b3c4d
	ebrGapSect = 1 * mib
)

// sampleTable has 3 FAT32 primaries on 4 MiB boundaries and 3 Linux
// logical partitions, each 1 MiB after its EBR.
func sampleTable() Table {
	return Table{
		DiskSignature: testSig,
		Primary: []Partition{
			{Type: 0x0C, Start: 4 * mib, Sectors: 64 * mib, Bootable: true},
			{Type: 0x0C, Start: 68 * mib, Sectors: 32 * mib},
			{Type: 0x0C, Start: 100 * mib, Sectors: 32 * mib},
		},
		ExtendedStart: 132 * mib,
		Logical: []Partition{
			{Type: 0x83, Start: 133 * mib, Sectors: 64 * mib},
			{Type: 0x83, Start: 198 * mib, Sectors: 64*mib + 7}, // odd size: next EBR not aligned
			{Type: 0x83, Start: 264 * mib, Sectors: 128 * mib},
		},
	}
}

// wantEntries is what Read must report for sampleTable.
func wantEntries() []Entry {
	return []Entry{
		{Number: 1, Type: 0x0C, Start: 4 * mib, Sectors: 64 * mib, Bootable: true},
		{Number: 2, Type: 0x0C, Start: 68 * mib, Sectors: 32 * mib},
		{Number: 3, Type: 0x0C, Start: 100 * mib, Sectors: 32 * mib},
		{Number: 4, Type: 0x0F, Start: 132 * mib, Sectors: (264 + 128 - 132) * mib, Extended: true},
		{Number: 5, Type: 0x83, Start: 133 * mib, Sectors: 64 * mib},
		{Number: 6, Type: 0x83, Start: 198 * mib, Sectors: 64*mib + 7},
		{Number: 7, Type: 0x83, Start: 264 * mib, Sectors: 128 * mib},
	}
}

// mem is a sparse in-memory disk of size bytes, stored per sector, that
// records which offsets were written.
type mem struct {
	size   int64
	secs   map[int64][]byte
	writes []int64
}

func newMem(size int64) *mem { return &mem{size: size, secs: map[int64][]byte{}} }

// at returns the n bytes at off (within one sector) for inspection or editing.
func (m *mem) at(off int64, n int) []byte {
	lba := off / SectorSize
	if m.secs[lba] == nil {
		m.secs[lba] = make([]byte, SectorSize)
	}
	return m.secs[lba][off%SectorSize:][:n]
}

func (m *mem) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > m.size {
		return 0, fmt.Errorf("write at %d beyond disk end %d", off, m.size)
	}
	m.writes = append(m.writes, off)
	for i, c := range p {
		m.at(off+int64(i), 1)[0] = c
	}
	return len(p), nil
}

func (m *mem) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		if off+int64(i) >= m.size {
			return i, io.EOF
		}
		p[i] = 0
		if sec := m.secs[(off+int64(i))/SectorSize]; sec != nil {
			p[i] = sec[(off+int64(i))%SectorSize]
		}
	}
	return len(p), nil
}

func writeMem(t *testing.T, tab Table) *mem {
	t.Helper()
	m := newMem(diskSize * SectorSize)
	if err := Write(m, tab, diskSize); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return m
}

func findSfdisk(t *testing.T) string {
	t.Helper()
	return hosttool.Need(t, "sfdisk", "fdisk")
}

type sfdiskDump struct {
	PartitionTable struct {
		Label      string `json:"label"`
		ID         string `json:"id"`
		Unit       string `json:"unit"`
		SectorSize int    `json:"sectorsize"`
		Partitions []struct {
			Node     string `json:"node"`
			Start    uint64 `json:"start"`
			Size     uint64 `json:"size"`
			Type     string `json:"type"`
			Bootable bool   `json:"bootable"`
		} `json:"partitions"`
	} `json:"partitiontable"`
}

// checkWithSfdisk writes tab into a sparse image and compares sfdisk's
// view of it with want.
func checkWithSfdisk(t *testing.T, tab Table, want []Entry) {
	sfdisk := findSfdisk(t)
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(diskSize * SectorSize); err != nil {
		t.Fatal(err)
	}
	if err := Write(f, tab, diskSize); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(sfdisk, "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, out)
	}
	var d sfdiskDump
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("decoding sfdisk output: %v\n%s", err, out)
	}
	pt := d.PartitionTable
	if pt.Label != "dos" {
		t.Errorf("label = %q, want dos", pt.Label)
	}
	if id, err := strconv.ParseUint(strings.TrimPrefix(pt.ID, "0x"), 16, 32); err != nil || uint32(id) != tab.DiskSignature {
		t.Errorf("disk id = %q, want %#08x", pt.ID, tab.DiskSignature)
	}
	if pt.Unit != "sectors" || pt.SectorSize != SectorSize {
		t.Errorf("unit %q sector size %d, want sectors/512", pt.Unit, pt.SectorSize)
	}
	if len(pt.Partitions) != len(want) {
		t.Fatalf("sfdisk lists %d partitions, want %d:\n%s", len(pt.Partitions), len(want), out)
	}
	for i, p := range pt.Partitions {
		w := want[i]
		if p.Node != img+strconv.Itoa(w.Number) {
			t.Errorf("partition %d: node %q, want %q", i, p.Node, img+strconv.Itoa(w.Number))
		}
		if p.Start != w.Start || p.Size != w.Sectors {
			t.Errorf("p%d: start/size %d/%d, want %d/%d", w.Number, p.Start, p.Size, w.Start, w.Sectors)
		}
		if typ := fmt.Sprintf("%x", w.Type); p.Type != typ {
			t.Errorf("p%d: type %q, want %q", w.Number, p.Type, typ)
		}
		if p.Bootable != w.Bootable {
			t.Errorf("p%d: bootable %v, want %v", w.Number, p.Bootable, w.Bootable)
		}
	}

	// sfdisk 2.38 exits 0 even when it reports errors, so check the text too.
	cmd := exec.Command(sfdisk, "--verify", img)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}

	f, err = os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sig, got, err := Read(f)
	if err != nil {
		t.Fatalf("Read image: %v", err)
	}
	if sig != tab.DiskSignature || !reflect.DeepEqual(got, want) {
		t.Errorf("Read image = %#x %+v, want %#x %+v", sig, got, tab.DiskSignature, want)
	}
}

func TestSfdisk(t *testing.T) {
	checkWithSfdisk(t, sampleTable(), wantEntries())
}

func TestSfdiskOnePrimary(t *testing.T) {
	// With one primary the extended partition takes slot 2 and the
	// logical partitions still start at p5.
	tab := Table{
		DiskSignature: 0xdeadbeef,
		Primary:       []Partition{{Type: 0x0C, Start: 8192, Sectors: 8192}},
		ExtendedStart: 16384,
		Logical: []Partition{
			{Type: 0x83, Start: 16385, Sectors: 100},
			{Type: 0x83, Start: 16486, Sectors: 100},
		},
	}
	checkWithSfdisk(t, tab, []Entry{
		{Number: 1, Type: 0x0C, Start: 8192, Sectors: 8192},
		{Number: 2, Type: 0x0F, Start: 16384, Sectors: 16586 - 16384, Extended: true},
		{Number: 5, Type: 0x83, Start: 16385, Sectors: 100},
		{Number: 6, Type: 0x83, Start: 16486, Sectors: 100},
	})
}

func TestRoundTrip(t *testing.T) {
	m := writeMem(t, sampleTable())
	sig, got, err := Read(m)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if sig != testSig {
		t.Errorf("signature %#x, want %#x", sig, uint32(testSig))
	}
	if want := wantEntries(); !reflect.DeepEqual(got, want) {
		t.Errorf("Read =\n%+v\nwant\n%+v", got, want)
	}

	// Only primaries: no extended partition, no EBRs.
	tab := sampleTable()
	tab.Logical = nil
	m = writeMem(t, tab)
	if _, got, err = Read(m); err != nil || !reflect.DeepEqual(got, wantEntries()[:3]) {
		t.Errorf("primaries only: Read = %+v, %v", got, err)
	}
}

func TestLayoutBytes(t *testing.T) {
	tab := sampleTable()
	m := writeMem(t, tab)
	// Exactly the MBR and the three EBRs are written.
	var written []int64
	written = append(written, m.writes...)
	sort.Slice(written, func(i, j int) bool { return written[i] < written[j] })
	wantW := []int64{0, 132 * mib * SectorSize, (198*mib - ebrGapSect) * SectorSize, (264*mib - ebrGapSect) * SectorSize}
	if !reflect.DeepEqual(written, wantW) {
		t.Errorf("written offsets %v, want %v", written, wantW)
	}
	for i := range tab.Logical {
		if got := int64(tab.EBRSector(i)) * SectorSize; got != wantW[i+1] {
			t.Errorf("EBRSector(%d)*512 = %d, want %d", i, got, wantW[i+1])
		}
	}
	mbr := m.at(0, SectorSize)
	if !bytes.Equal(mbr[:440], make([]byte, 440)) || mbr[444] != 0 || mbr[445] != 0 {
		t.Error("boot code area or bytes 444..445 not zero")
	}
	if binary.LittleEndian.Uint32(mbr[440:]) != testSig || mbr[510] != 0x55 || mbr[511] != 0xAA {
		t.Error("bad disk signature or boot signature")
	}
	// First entry: bootable, CHS of LBA 8192 = 0/130/3, FAT32 LBA.
	if e := mbr[446:462]; !bytes.Equal(e[:5], []byte{0x80, 130, 3, 0, 0x0C}) {
		t.Errorf("entry 1 head = % x", e[:5])
	}
	// The first EBR: entry 1 relative to the EBR itself, entry 2 a type 0x05
	// link relative to ExtendedStart covering the next EBR and p6.
	ebr0 := m.at(132*mib*SectorSize, SectorSize)
	link := ebr0[462:478]
	if link[4] != 0x05 ||
		binary.LittleEndian.Uint32(link[8:]) != 198*mib-ebrGapSect-132*mib ||
		binary.LittleEndian.Uint32(link[12:]) != ebrGapSect+64*mib+7 {
		t.Errorf("EBR link entry % x", link)
	}
	if binary.LittleEndian.Uint32(ebr0[446+8:]) != ebrGapSect {
		t.Errorf("logical entry start not relative to its EBR: % x", ebr0[446:462])
	}
	if !bytes.Equal(ebr0[478:510], make([]byte, 32)) {
		t.Error("EBR entries 3 and 4 not zero")
	}
}

func TestCHSClamp(t *testing.T) {
	b := make([]byte, 3)
	putCHS(b, 20<<21) // 20 GiB
	if !bytes.Equal(b, []byte{0xFE, 0xFF, 0xFF}) {
		t.Errorf("CHS beyond 8 GiB = % x, want fe ff ff", b)
	}
	putCHS(b, 1023*255*63-1) // last addressable: 1022/254/63
	if !bytes.Equal(b, []byte{254, 63 | 3<<6, 0xFE}) {
		t.Errorf("CHS of last sector of cylinder 1022 = % x", b)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := writeMem(t, sampleTable()), writeMem(t, sampleTable())
	if !reflect.DeepEqual(a.secs, b.secs) || !reflect.DeepEqual(a.writes, b.writes) {
		t.Error("two writes of the same table differ")
	}
}

func TestWriteErrors(t *testing.T) {
	cases := []struct {
		name   string
		edit   func(*Table)
		disk   uint64
		substr string
	}{
		{"zero signature", func(t *Table) { t.DiskSignature = 0 }, 0, "signature 0"},
		{"too many primaries", func(t *Table) {
			t.Primary = append(t.Primary, Partition{Type: 0x83, Start: 500 * mib, Sectors: 1})
		}, 0, "4 primary partitions"},
		{"primary overlap", func(t *Table) { t.Primary[1].Start = 60 * mib }, 0, "primary partition 2 (p2) (sectors 122880..188415) overlaps p1"},
		{"primary overlaps extended", func(t *Table) { t.Primary[2].Sectors = 33 * mib }, 0, "extended partition (p4)"},
		{"logical overlaps primary", func(t *Table) { t.Primary[2].Start = 140 * mib }, 0, "logical partition 1 (p5) (sectors 272384..403455) overlaps p3"},
		{"beyond disk", func(t *Table) {}, 300 * mib, "logical partition 3 (p7) (sectors 540672..802815) ends beyond the disk of 614400 sectors"},
		{"primary beyond disk", func(t *Table) { t.Primary[0].Start = diskSize }, 0, "primary partition 1 (p1)"},
		{"EBR collides with previous", func(t *Table) { t.Logical[1].Start = 197*mib + 1 }, 0,
			"logical partition 2 (p6) at sector 403457 needs its EBR at sector 401409 (gap 2048), which is not after the end of p5 (last sector 403455)"},
		{"EBR right after previous end is fine but logical order wrong", func(t *Table) {
			t.Logical[1], t.Logical[2] = t.Logical[2], t.Logical[1]
		}, 0, "logical partition 3 (p7)"},
		{"extended after first logical", func(t *Table) { t.ExtendedStart = 133 * mib }, 0, "must be before logical partition 1 (p5)"},
		{"extended at sector 0", func(t *Table) { t.ExtendedStart = 0 }, 0, "sector 0"},
		{"empty type", func(t *Table) { t.Logical[0].Type = 0 }, 0, "logical partition 1 (p5) has type 0x00"},
		{"extended type", func(t *Table) { t.Primary[0].Type = 0x05 }, 0, "extended type 0x05"},
		{"zero size", func(t *Table) { t.Primary[1].Sectors = 0 }, 0, "primary partition 2 (p2) is empty"},
		{"disk too big", func(t *Table) {}, 1<<32 + 1, "2 TiB"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab := sampleTable()
			c.edit(&tab)
			disk := c.disk
			if disk == 0 {
				disk = diskSize
			}
			m := newMem(int64(diskSize) * SectorSize)
			err := Write(m, tab, disk)
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("Write error = %v, want one containing %q", err, c.substr)
			}
			if len(m.writes) != 0 {
				t.Errorf("invalid table still wrote %d sectors", len(m.writes))
			}
		})
	}
	// The sample itself is valid right at the edge: last partition ends at the last sector.
	if err := Write(newMem(392*mib*SectorSize), sampleTable(), 392*mib); err != nil {
		t.Errorf("table ending at the last disk sector rejected: %v", err)
	}
}

type failWriter struct{}

var errDisk = errors.New("disk on fire")

func (failWriter) WriteAt(p []byte, off int64) (int, error) {
	if off > 0 {
		return 0, errDisk
	}
	return len(p), nil
}

func TestWriteIOError(t *testing.T) {
	err := Write(failWriter{}, sampleTable(), diskSize)
	if !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "EBR of p5 at sector 270336") {
		t.Errorf("Write error = %v", err)
	}
}

func TestReadErrors(t *testing.T) {
	ebr := func(i int) int64 { return int64(sampleTable().EBRSector(i)) * SectorSize }
	put32 := func(m *mem, off int64, v uint32) { binary.LittleEndian.PutUint32(m.at(off, 4), v) }

	cases := []struct {
		name   string
		edit   func(*mem)
		substr string
	}{
		{"no signature", func(m *mem) { m.at(511, 1)[0] = 0 }, "sector 0 has no 0x55AA signature"},
		{"empty disk", func(m *mem) { m.secs = map[int64][]byte{} }, "no 0x55AA signature"},
		{"short disk", func(m *mem) { m.size = 100 }, "reading MBR"},
		{"EBR without signature", func(m *mem) { m.at(ebr(1)+510, 1)[0] = 0 }, "EBR at sector 403456 has no 0x55AA"},
		{"EBR loop to first", func(m *mem) {
			// Link of the last EBR points back to the first one (relative 0).
			last := ebr(2)
			copy(m.at(last+462, 16), m.at(ebr(0)+462, 16))
			put32(m, last+462+8, 0)
		}, "loops back to sector 270336"},
		{"EBR loop to itself", func(m *mem) {
			put32(m, ebr(1)+462+8, uint32(ebr(1)/SectorSize-132*mib))
		}, "loops back to sector 403456"},
		{"logical outside extended", func(m *mem) { put32(m, ebr(2)+446+12, 200*mib) }, "p7 (sectors 540672..950271, from EBR at sector 538624) is not inside extended partition p4"},
		{"link outside extended", func(m *mem) { put32(m, ebr(0)+462+8, 400*mib) }, "links to sector 1089536, outside extended partition p4"},
		{"bad status", func(m *mem) { m.at(446+16, 1)[0] = 0x12 }, "entry 2 has invalid status byte 0x12"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := writeMem(t, sampleTable())
			c.edit(m)
			_, _, err := Read(m)
			if err == nil || !strings.Contains(err.Error(), c.substr) {
				t.Fatalf("Read error = %v, want one containing %q", err, c.substr)
			}
		})
	}

	// A chain of more than 128 EBRs without data is cut off.
	m := newMem(2000 * SectorSize)
	tab := make([]byte, SectorSize)
	binary.LittleEndian.PutUint32(tab[440:], 1)
	tab[446+4] = 0x0F
	binary.LittleEndian.PutUint32(tab[446+8:], 1000)
	binary.LittleEndian.PutUint32(tab[446+12:], 500)
	tab[510], tab[511] = 0x55, 0xAA
	copy(m.at(0, SectorSize), tab)
	for k := 0; k < 300; k++ {
		sec := m.at(int64(1000+k)*SectorSize, SectorSize)
		sec[446+4] = 0x05
		binary.LittleEndian.PutUint32(sec[446+8:], uint32(k+1))
		binary.LittleEndian.PutUint32(sec[446+12:], 1)
		sec[510], sec[511] = 0x55, 0xAA
	}
	if _, _, err := Read(m); err == nil || !strings.Contains(err.Error(), "longer than 128 EBRs") {
		t.Errorf("long chain: Read error = %v", err)
	}

	// An extended partition whose first EBR is all zero has no logicals.
	m = newMem(2000 * SectorSize)
	copy(m.at(0, SectorSize), tab)
	if _, got, err := Read(m); err != nil || len(got) != 1 || !got[0].Extended {
		t.Errorf("empty extended: Read = %+v, %v", got, err)
	}
}

func TestPartUUID(t *testing.T) {
	if got := PartUUID(0x0000abcd, 5); got != "0000abcd-05" {
		t.Errorf("PartUUID = %q", got)
	}
	if got := PartUUID(testSig, 12); got != "1a2b3c4d-0c" {
		t.Errorf("PartUUID = %q", got)
	}
}
