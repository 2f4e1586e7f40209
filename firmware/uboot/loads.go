package uboot

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An arm64 kernel Image starts with a 64-byte header (the kernel's
// Documentation/arch/arm64/booting.rst): text_offset at 8, image_size at
// 16, flags at 24, the magic "ARM\x64" at 56. image_size covers the
// kernel's whole footprint in memory once running (bss included), which is
// larger than the file.
const (
	arm64Magic   = 0x644d5241
	arm64Header  = 64
	flagPhysBase = 1 << 3 // the 2 MiB aligned base may be anywhere in RAM
	align2M      = 2 << 20
)

// ErrKernelHeader is returned for a kernel file that is not an arm64 Image.
var ErrKernelHeader = errors.New("not an arm64 kernel Image")

// KernelHeader is what booti reads from an Image.
type KernelHeader struct {
	TextOffset, ImageSize, Flags uint64
}

// ParseKernelHeader reads an arm64 Image header.
func ParseKernelHeader(kernel []byte) (KernelHeader, error) {
	if len(kernel) < arm64Header {
		return KernelHeader{}, fmt.Errorf("%w: %d bytes", ErrKernelHeader, len(kernel))
	}
	le := binary.LittleEndian
	if le.Uint32(kernel[56:]) != arm64Magic {
		return KernelHeader{}, fmt.Errorf("%w: no ARM\\x64 magic at byte 56 (a compressed vmlinuz is not supported)", ErrKernelHeader)
	}
	h := KernelHeader{TextOffset: le.Uint64(kernel[8:]), ImageSize: le.Uint64(kernel[16:]), Flags: le.Uint64(kernel[24:])}
	if h.ImageSize == 0 {
		// Kernels before 3.17 leave it 0; booti then assumes the file size.
		h.ImageSize = uint64(len(kernel))
	}
	return h, nil
}

// Relocated is where booti moves the kernel before starting it (U-Boot's
// booti_setup): with the physical-base flag the kernel runs at its load
// address rounded up to 2 MiB, otherwise at the start of RAM.
func (h KernelHeader) Relocated(loadAddr, ramBase uint64) uint64 {
	dst := ramBase
	if h.Flags&flagPhysBase != 0 {
		dst = loadAddr - h.TextOffset
	}
	return alignUp(dst, align2M) + h.TextOffset
}

// Window is the RAM a board's boot script may load files into: from Base
// up to Limit, on a board whose RAM starts at RAMBase. It must stay clear
// of what the firmware and U-Boot keep for themselves (U-Boot relocates
// itself, its device tree and its heap to the top of the first bank).
type Window struct {
	RAMBase, Base, Limit uint64
}

// Loads are the addresses the boot script loads the slot's files to.
type Loads struct {
	Kernel, FDT, Initrd uint64
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }

// fdtHeadroom is left after the device tree: U-Boot adds /chosen
// (bootargs, the initrd's bounds) and its fixups to it before the kernel
// starts.
const fdtHeadroom = 1 << 20

// PlanLoads places the kernel, device tree and initramfs in the window so
// that none overlaps another, nor the kernel where booti will move it. The
// sizes are the files' as built: the script is generated per build, so a
// kernel that grows moves the others up with it.
func PlanLoads(w Window, kernel []byte, initrdSize, fdtSize int64) (Loads, error) {
	h, err := ParseKernelHeader(kernel)
	if err != nil {
		return Loads{}, err
	}
	if w.Base%align2M != 0 || w.Limit <= w.Base {
		return Loads{}, fmt.Errorf("boot script: load window %#x-%#x is not 2 MiB aligned", w.Base, w.Limit)
	}
	// At a 2 MiB aligned address plus text_offset booti runs the kernel
	// in place.
	k := w.Base + h.TextOffset
	end := max(k+uint64(len(kernel)), h.Relocated(k, w.RAMBase)+h.ImageSize)
	l := Loads{Kernel: k}
	l.FDT = alignUp(end, align2M)
	l.Initrd = alignUp(l.FDT+uint64(fdtSize)+fdtHeadroom, align2M)
	if top := l.Initrd + uint64(initrdSize); top > w.Limit {
		return Loads{}, fmt.Errorf("boot script: kernel (%d bytes, %d in memory), device tree (%d) and initramfs (%d) need RAM up to %#x, past this board's load limit %#x: make the initramfs smaller",
			len(kernel), h.ImageSize, fdtSize, initrdSize, top, w.Limit)
	}
	return l, nil
}
