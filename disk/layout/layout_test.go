package layout

import (
	"bytes"
	"testing"

	"github.com/pibake/pibake/disk/mbr"
)

func TestComputeAlignedAndRoundTrips(t *testing.T) {
	l, err := Compute(Sizes{Bootsel: 64 * MiB, Boot: 101 * MiB, Root: 300 * MiB, Data: 32 * MiB})
	if err != nil {
		t.Fatal(err)
	}
	prevEnd := int64(0)
	for _, p := range l.Parts {
		if p.Offset%Align != 0 || p.Size%Align != 0 {
			t.Errorf("%s at %d size %d not aligned to %d", p.Name, p.Offset, p.Size, Align)
		}
		if p.Offset < prevEnd {
			t.Errorf("%s overlaps the previous partition", p.Name)
		}
		prevEnd = p.Offset + p.Size
	}
	if b, _ := l.Part(BootA); b.Size != 104*MiB {
		t.Errorf("boot-a size %d, want 104 MiB (101 MiB rounded up to 4 MiB)", b.Size)
	}
	if r, _ := l.Part(RootA); r.Offset-EBRGap != l.ExtendedStart {
		t.Errorf("root-a at %d, extended partition at %d: want the EBR 1 MiB before", r.Offset, l.ExtendedStart)
	}
	if l.DiskSize != prevEnd {
		t.Errorf("disk size %d, want %d", l.DiskSize, prevEnd)
	}
}

// sparse is an in-memory disk that stores only written sectors.
type sparse struct {
	disk map[int64][]byte
}

func (s *sparse) ReadAt(p []byte, off int64) (int, error) {
	for i := range p {
		p[i] = 0
	}
	if b, ok := s.disk[off]; ok {
		copy(p, b)
	}
	return len(p), nil
}

func (s *sparse) WriteAt(p []byte, off int64) (int, error) {
	s.disk[off] = bytes.Clone(p)
	return len(p), nil
}

func TestFromMBR(t *testing.T) {
	l, err := Compute(Sizes{Bootsel: 64 * MiB, Boot: 128 * MiB, Root: 512 * MiB, Data: 256 * MiB})
	if err != nil {
		t.Fatal(err)
	}
	d := &sparse{disk: map[int64][]byte{}}
	if err := mbr.Write(d, l.MBR(0xdeadbeef), uint64(l.DiskSize/mbr.SectorSize)); err != nil {
		t.Fatal(err)
	}
	sig, entries, err := mbr.Read(d)
	if err != nil {
		t.Fatal(err)
	}
	if sig != 0xdeadbeef {
		t.Errorf("signature %x", sig)
	}
	got, err := FromMBR(entries, l.DiskSize)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range l.Parts {
		if got.Parts[i].Offset != p.Offset || got.Parts[i].Size != p.Size || got.Parts[i].Name != p.Name {
			t.Errorf("partition %s: read %+v, wrote %+v", p.Name, got.Parts[i], p)
		}
	}
	if got.ExtendedStart != l.ExtendedStart {
		t.Errorf("extended start %d, want %d", got.ExtendedStart, l.ExtendedStart)
	}
	// A disk whose p5 has the wrong type is not a pibake disk.
	for i := range entries {
		if entries[i].Number == 5 {
			entries[i].Type = 0x07
		}
	}
	if _, err := FromMBR(entries, l.DiskSize); err == nil {
		t.Error("FromMBR accepted a wrong partition type")
	}
}
