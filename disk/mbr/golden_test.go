package mbr

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"testing"
)

// sectorsSum hashes every sector written to m with its LBA, in LBA order.
func sectorsSum(m *mem) string {
	var lbas []int64
	for lba := range m.secs {
		lbas = append(lbas, lba)
	}
	slices.Sort(lbas)
	h := sha256.New()
	for _, lba := range lbas {
		_ = binary.Write(h, binary.BigEndian, lba)
		h.Write(m.secs[lba])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestGoldenBytes pins the exact bytes Write produces, so a change to how
// entries are encoded shows up here.
func TestGoldenBytes(t *testing.T) {
	big := sampleTable()
	big.Logical[2].Sectors = diskSize - big.Logical[2].Start // ends at the disk's end
	big.Logical[1].Bootable = true
	huge := Table{
		DiskSignature: 0xdeadbeef,
		Primary:       []Partition{{Type: 0x0C, Start: 8192, Sectors: 20 << 21, Bootable: true}},
		ExtendedStart: 8192 + 20<<21,
		Logical:       []Partition{{Type: 0x83, Start: 8192 + 20<<21 + 2048, Sectors: 1 << 21}},
	}
	for _, c := range []struct {
		name string
		tab  Table
		disk uint64
		want string
	}{
		{"sample", sampleTable(), diskSize, "e7d5c8281757b075a09b961bf94d8d20e99e50680191cee81763f36f648bb7b8"},
		{"bootable logical, last at the end", big, diskSize, "0b9034c6fe638e6822ff07dce4c165039fb1508d67b2952f0db63e93b35c6b64"},
		{"beyond CHS", huge, 1 << 32, "20dedb6c4dacd70303745df5ae392dd3bac77c589d5d1688fff948c8f324e899"},
	} {
		m := newMem(int64(c.disk) * SectorSize)
		if err := Write(m, c.tab, c.disk); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := sectorsSum(m); got != c.want {
			t.Errorf("%s: sectors sha256 %s, want %s", c.name, got, c.want)
		}
	}
}
