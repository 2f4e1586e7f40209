package fat

import (
	"strings"
	"testing"
)

// TestLayout checks, over many volume sizes, that the FAT covers every
// cluster, that it is the smallest FAT that does, and that the cluster size
// follows the table.
func TestLayout(t *testing.T) {
	var sizes []uint64
	for s := uint64(66581); s < 80000; s += 97 {
		sizes = append(sizes, s)
	}
	for _, tier := range clusterTiers[:len(clusterTiers)-1] {
		sizes = append(sizes, tier.maxSectors-1, tier.maxSectors, tier.maxSectors+1)
	}
	sizes = append(sizes, maxSectors)
	for _, total := range sizes {
		g, err := newGeometry(int64(total) * sectorSize)
		if err != nil {
			t.Fatalf("%d sectors: %v", total, err)
		}
		if g.secPerClus != secPerClusFor(total) {
			t.Errorf("%d sectors: %d sectors per cluster", total, g.secPerClus)
		}
		if uint64(g.fatSectors)*sectorSize/fatEntrySize < uint64(g.clusters)+2 {
			t.Errorf("%d sectors: FAT of %d sectors cannot map %d clusters", total, g.fatSectors, g.clusters)
		}
		data := uint64(g.totalSectors) - reservedSectors - numFATs*uint64(g.fatSectors)
		if uint64(g.clusters) != data/uint64(g.secPerClus) {
			t.Errorf("%d sectors: %d clusters, but %d data sectors", total, g.clusters, data)
		}
		// One FAT sector less must be too small for what it would leave.
		smaller := (data + numFATs) / uint64(g.secPerClus)
		if g.fatSectors > 1 && fatSectorsFor(smaller) <= uint64(g.fatSectors)-1 {
			t.Errorf("%d sectors: FAT of %d sectors is larger than needed", total, g.fatSectors)
		}
	}
	if _, err := newGeometry(66580 * sectorSize); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("66580 sectors: err = %v, want too small", err)
	}
}

// TestSectorsForClusters checks that the computed minimum holds n clusters
// and one sector less does not.
func TestSectorsForClusters(t *testing.T) {
	for tier := range clusterTiers {
		for _, n := range []uint64{minClusters, 70000, 100003, 1 << 20, 3<<20 + 5} {
			total := sectorsForClusters(n, tier)
			if total == 0 {
				continue
			}
			spc := clusterTiers[tier].secPerClus
			if g, ok := layoutFor(total, spc); !ok || uint64(g.clusters) < n {
				t.Errorf("tier %d, %d clusters: %d sectors give only %d", tier, n, total, g.clusters)
			}
			lo := uint64(1)
			if tier > 0 {
				lo = clusterTiers[tier-1].maxSectors + 1
			}
			if total > lo {
				if g, ok := layoutFor(total-1, spc); ok && uint64(g.clusters) >= n {
					t.Errorf("tier %d, %d clusters: %d sectors is not the minimum", tier, n, total)
				}
			}
		}
	}
}

func TestOpenRejects(t *testing.T) {
	files, dirs := testTree()
	good := make(memDisk, testSize)
	if err := Write(good, testOptions(testSize), files, dirs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(d memDisk)
		size   int64
		want   string
	}{
		{"signature", func(d memDisk) { d[510] = 0 }, testSize, "0x55AA"},
		{"FAT16 fields", func(d memDisk) { d[22] = 1 }, testSize, "not a FAT32"},
		{"sector size", func(d memDisk) { d[11], d[12] = 0, 3 }, testSize, "bytes per sector"},
		{"cluster size", func(d memDisk) { d[13] = 3 }, testSize, "sectors per cluster"},
		{"truncated", func(memDisk) {}, testSize - 512, "only"},
		{"root cluster", func(d memDisk) { d[44] = 0 }, testSize, "root directory cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := append(memDisk(nil), good...)
			tc.mutate(d)
			_, err := Open(d, tc.size)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Open(good, testSize); err != nil {
		t.Fatalf("Open(good): %v", err)
	}
}
