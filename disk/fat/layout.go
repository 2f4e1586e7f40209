package fat

import (
	"fmt"
)

const (
	sectorSize      = 512
	reservedSectors = 32
	numFATs         = 2
	fatEntrySize    = 4
	dirEntrySize    = 32

	// minClusters is the smallest cluster count that makes a volume FAT32
	// (fewer clusters means FAT16 by definition).
	minClusters = 65525
	// maxClusters bounds the cluster count so that no cluster number
	// collides with the reserved, bad-cluster and end-of-chain values.
	maxClusters = 0x0ffffff5

	maxSectors = 1<<32 - 1 // BPB_TotSec32 is 32 bits wide
)

// clusterTier is one row of Microsoft's FAT32 cluster size table: volumes of
// at most maxSectors sectors use secPerClus sectors per cluster.
type clusterTier struct {
	maxSectors uint64
	secPerClus uint32
}

var clusterTiers = []clusterTier{
	{532480, 1},    // up to 260 MiB: 512-byte clusters
	{16777216, 8},  // up to 8 GiB: 4 KiB
	{33554432, 16}, // up to 16 GiB: 8 KiB
	{67108864, 32}, // up to 32 GiB: 16 KiB
	{maxSectors, 64},
}

// secPerClusFor returns the sectors per cluster for a volume size.
func secPerClusFor(totalSectors uint64) uint32 {
	for _, t := range clusterTiers {
		if totalSectors <= t.maxSectors {
			return t.secPerClus
		}
	}
	return clusterTiers[len(clusterTiers)-1].secPerClus
}

// geometry is the on-disk layout of a FAT32 volume.
type geometry struct {
	totalSectors uint32
	secPerClus   uint32
	fatSectors   uint32 // per FAT
	clusters     uint32 // data clusters, numbered 2..clusters+1
}

func (g geometry) clusterSize() int64 { return int64(g.secPerClus) * sectorSize }

func (g geometry) fatOffset(i int) int64 {
	return (reservedSectors + int64(i)*int64(g.fatSectors)) * sectorSize
}

func (g geometry) dataOffset() int64 { return g.fatOffset(numFATs) }

// clusterOffset is the byte offset of cluster c (c >= 2).
func (g geometry) clusterOffset(c uint32) int64 {
	return g.dataOffset() + int64(c-2)*g.clusterSize()
}

// fatSectorsFor is the FAT length in sectors needed for a cluster count
// (the two reserved entries included).
func fatSectorsFor(clusters uint64) uint64 {
	return ((clusters+2)*fatEntrySize + sectorSize - 1) / sectorSize
}

// layoutFor computes the geometry for a volume of totalSectors sectors with
// the given cluster size, using the smallest FAT that covers every cluster
// that fits beside it. ok is false if no cluster fits at all.
func layoutFor(totalSectors uint64, spc uint32) (g geometry, ok bool) {
	clustersWith := func(fat uint64) uint64 {
		if totalSectors < reservedSectors+numFATs*fat+uint64(spc) {
			return 0
		}
		return (totalSectors - reservedSectors - numFATs*fat) / uint64(spc)
	}
	// A FAT of fat sectors is big enough when it covers the clusters left
	// beside it. That test is monotonic in fat (a bigger FAT leaves fewer
	// clusters), so binary-search for the smallest FAT that passes; a FAT
	// sized for the whole volume always does.
	lo, hi := uint64(1), fatSectorsFor(totalSectors/uint64(spc))
	for lo < hi {
		mid := lo + (hi-lo)/2
		if fatSectorsFor(clustersWith(mid)) <= mid {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	clusters := clustersWith(lo)
	if clusters == 0 {
		return geometry{}, false
	}
	return geometry{
		totalSectors: uint32(totalSectors),
		secPerClus:   spc,
		fatSectors:   uint32(lo),
		clusters:     uint32(clusters),
	}, true
}

// newGeometry validates a volume size and returns its layout.
func newGeometry(size int64) (geometry, error) {
	if size <= 0 || size%sectorSize != 0 {
		return geometry{}, fmt.Errorf("fat: size %d is not a positive multiple of %d bytes", size, sectorSize)
	}
	total := uint64(size / sectorSize)
	if total > maxSectors {
		return geometry{}, fmt.Errorf("fat: size %d bytes is too large: FAT32 holds at most %d sectors of %d bytes",
			size, uint64(maxSectors), sectorSize)
	}
	g, ok := layoutFor(total, secPerClusFor(total))
	if !ok || g.clusters < minClusters {
		return geometry{}, fmt.Errorf("fat: size %d bytes is too small for FAT32: it needs at least %d clusters (%d bytes)",
			size, minClusters, minVolumeBytes())
	}
	if g.clusters >= maxClusters {
		return geometry{}, fmt.Errorf("fat: size %d bytes gives %d clusters, more than FAT32 allows", size, g.clusters)
	}
	return g, nil
}

// sectorsForClusters is the smallest volume, in sectors, that the tier with
// secPerClus sectors per cluster lays out with at least n clusters, or 0 if
// that tier cannot hold n clusters.
func sectorsForClusters(n uint64, tier int) uint64 {
	spc := clusterTiers[tier].secPerClus
	var lo uint64 = 1
	if tier > 0 {
		lo = clusterTiers[tier-1].maxSectors + 1
	}
	// Any layout with n clusters needs n clusters of data plus FATs that
	// cover them, so this is a lower bound, and layoutFor reaches it.
	total := reservedSectors + numFATs*fatSectorsFor(n) + n*uint64(spc)
	if total < lo {
		total = lo
		for {
			if g, ok := layoutFor(total, spc); ok && uint64(g.clusters) >= n {
				break
			}
			total++
		}
	}
	if total > clusterTiers[tier].maxSectors {
		return 0
	}
	return total
}

// minVolumeBytes is the size of the smallest FAT32 volume this package
// writes.
func minVolumeBytes() int64 {
	return int64(sectorsForClusters(minClusters, 0)) * sectorSize
}
