package ubootcheck

import (
	"fmt"

	"github.com/pibake/pibake/firmware/uboot"
)

// Region is a span of memory a boot uses.
type Region struct {
	What       string
	Start, End uint64 // [Start, End)
}

// Regions lists the memory a booti with these loads touches.
func Regions(l uboot.Loads, h uboot.KernelHeader, kernelSize, initrdSize, fdtSize int64, ramBase uint64) []Region {
	reloc := h.Relocated(l.Kernel, ramBase)
	return []Region{
		{"kernel file", l.Kernel, l.Kernel + uint64(kernelSize)},
		{"relocated kernel", reloc, reloc + h.ImageSize},
		{"device tree", l.FDT, l.FDT + uint64(fdtSize)},
		{"initramfs", l.Initrd, l.Initrd + uint64(initrdSize)},
	}
}

// CheckDisjoint reports the first pair of regions that overlap. The kernel
// file and the relocated kernel may overlap each other: booti moves the
// one onto the other with memmove.
func CheckDisjoint(rs []Region) error {
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			a, b := rs[i], rs[j]
			if a.What == "kernel file" && b.What == "relocated kernel" {
				continue
			}
			if a.Start < b.End && b.Start < a.End {
				return fmt.Errorf("%s %#x-%#x overlaps %s %#x-%#x", a.What, a.Start, a.End, b.What, b.Start, b.End)
			}
		}
	}
	return nil
}
