package firmware

import (
	"encoding/binary"
	"testing"

	"github.com/pibake/pibake/firmware/uboot"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
)

// debianKernel has the header of trixie's linux-image-arm64 6.12: a
// 37.7 MB file that needs 0x2500000 bytes once running, relocatable.
func debianKernel(fileSize int, imageSize uint64) []byte {
	k := make([]byte, fileSize)
	binary.LittleEndian.PutUint64(k[16:], imageSize)
	binary.LittleEndian.PutUint64(k[24:], 0xa)
	copy(k[56:], "ARM\x64")
	return k
}

// The environments of the U-Boot builds the boards boot with (read out
// of u-boot-rpi's and u-boot-qemu's u-boot.bin, 2025.01).
var envs = map[string]map[string]string{
	"pi3":  {"kernel_addr_r": "0x00080000", "fdt_addr_r": "0x02600000", "ramdisk_addr_r": "0x02700000", "scriptaddr": "0x02400000"},
	"pi4":  {"kernel_addr_r": "0x00080000", "fdt_addr_r": "0x02600000", "ramdisk_addr_r": "0x02700000", "scriptaddr": "0x02400000"},
	"pi5":  {"kernel_addr_r": "0x00080000", "fdt_addr_r": "0x02600000", "ramdisk_addr_r": "0x02700000", "scriptaddr": "0x02400000"},
	"qemu": {"kernel_addr_r": "0x40400000", "fdt_addr_r": "0x40000000", "ramdisk_addr_r": "0x44000000", "scriptaddr": "0x40200000"},
}

// TestScriptLoadsDisjoint runs every board's boot script, as generated,
// against its U-Boot's environment with kernels of today's size and far
// bigger: the kernel where it is loaded and where booti moves it, the
// device tree and the initramfs never overlap.
func TestScriptLoadsDisjoint(t *testing.T) {
	kernels := []struct {
		name      string
		file      int
		imageSize uint64
	}{
		{"trixie 6.12", 37732288, 0x2500000},
		{"small", 8 << 20, 10 << 20},
		{"huge", 60 << 20, 80 << 20},
	}
	for _, b := range Boards {
		if envs[b.Name] == nil {
			t.Fatalf("board %s: no U-Boot environment in this test", b.Name)
		}
		for _, k := range kernels {
			kernel := debianKernel(k.file, k.imageSize)
			const initrd, dtb = 20 << 20, 60 << 10
			loads, err := uboot.PlanLoads(b.Loads, kernel, initrd, dtb)
			if err != nil {
				t.Fatalf("%s, %s: %v", b.Name, k.name, err)
			}
			script := uboot.Script(uboot.ScriptParams{Kernel: "vmlinuz", Initrd: "initrd.img", Loads: loads})
			got, err := ubootcheck.ResolveBooti(script, envs[b.Name])
			if err != nil {
				t.Fatal(err)
			}
			if !got.FDTLoaded {
				t.Errorf("%s: the script never loads ${fdtfile}", b.Name)
			}
			h, _ := uboot.ParseKernelHeader(kernel)
			l := uboot.Loads{Kernel: got.Kernel, Initrd: got.Initrd, FDT: got.FDT}
			rs := ubootcheck.Regions(l, h, int64(len(kernel)), initrd, dtb, b.Loads.RAMBase)
			if err := ubootcheck.CheckDisjoint(rs); err != nil {
				t.Errorf("board %s, kernel %s: %v", b.Name, k.name, err)
			}
			for _, r := range rs {
				if r.Start < b.Loads.Base || r.End > b.Loads.Limit {
					t.Errorf("board %s, kernel %s: %s %#x-%#x outside the load window", b.Name, k.name, r.What, r.Start, r.End)
				}
			}
		}
	}
}

// A kernel and initramfs that do not fit the window are refused at build
// time, not found out by a Pi that never boots.
func TestPlanLoadsTooBig(t *testing.T) {
	b, _ := Lookup("pi3")
	if _, err := uboot.PlanLoads(b.Loads, debianKernel(37732288, 0x2500000), 300<<20, 60<<10); err == nil {
		t.Error("a 300 MiB initramfs was placed below the Pi's 256 MiB limit")
	}
	if _, err := uboot.PlanLoads(b.Loads, make([]byte, 1<<20), 1<<20, 60<<10); err == nil {
		t.Error("a kernel without an arm64 header was accepted")
	}
}
