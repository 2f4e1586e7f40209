package builder

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/fdt"
	"github.com/pibake/pibake/firmware/initramfs"
	"github.com/pibake/pibake/firmware/initramfs/initramfscheck"
	"github.com/pibake/pibake/firmware/uboot"
	"github.com/pibake/pibake/firmware/uboot/ubootcheck"
)

// rpiEnv is the part of u-boot-rpi's default environment (2025.01, read
// out of its rpi_arm64/u-boot.bin) that a boot script could lean on.
var rpiEnv = map[string]string{
	"kernel_addr_r": "0x00080000", "scriptaddr": "0x02400000", "pxefile_addr_r": "0x02500000",
	"fdt_addr_r": "0x02600000", "ramdisk_addr_r": "0x02700000",
}

// checkBootChain reads a built U-Boot-chain image back as the board would
// boot it: the boot script's booti addresses, resolved against the
// board's U-Boot environment, must keep the kernel (where it is loaded
// and where booti moves it), the device tree and the initramfs apart; and
// the initramfs must carry the driver of every supply, clock and power
// domain of the storage controller in every device tree on the slot.
func checkBootChain(t *testing.T, img string, board firmware.Board, env map[string]string, modulesAlias, modulesBuiltin []byte) {
	t.Helper()
	f, size := openImage(t, img)
	bootsel, _, err := inspect.FAT(f, size, layout.Bootsel)
	if err != nil {
		t.Fatal(err)
	}
	scr, err := bootsel.ReadFile("boot.scr")
	if err != nil {
		t.Fatal(err)
	}
	script, err := ubootcheck.ParseScriptImage(scr)
	if err != nil {
		t.Fatal(err)
	}
	slot, _, err := inspect.FAT(f, size, layout.BootA)
	if err != nil {
		t.Fatal(err)
	}
	kernel, err := slot.ReadFile(KernelFile)
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := slot.ReadFile(InitrdFile)
	if err != nil {
		t.Fatal(err)
	}
	dtbs := map[string][]byte{}
	err = slot.Walk(func(p string, isDir bool, _ int64) error {
		if !isDir && strings.HasPrefix(p, "broadcom/") && strings.HasSuffix(p, ".dtb") {
			d, err := slot.ReadFile(p)
			dtbs[filepath.Base(p)] = d
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := uboot.ParseKernelHeader(kernel)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := ubootcheck.ResolveBooti(script, env)
	if err != nil {
		t.Fatal(err)
	}
	for name, dtb := range dtbs {
		l := uboot.Loads{Kernel: addrs.Kernel, Initrd: addrs.Initrd, FDT: addrs.FDT}
		regions := ubootcheck.Regions(l, h, int64(len(kernel)), int64(len(initrd)), int64(len(dtb)), board.Loads.RAMBase)
		if err := ubootcheck.CheckDisjoint(regions); err != nil {
			t.Errorf("board %s, %s, kernel image_size %#x: %v", board.Name, name, h.ImageSize, err)
		}
	}

	if len(dtbs) == 0 {
		return
	}
	cmd := exec.Command("cpio", "-i", "--quiet", "--to-stdout", "lib/modules/pibake.modules")
	cmd.Stdin = bytes.NewReader(initrd)
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: pibake.modules: %v", err)
	}
	db, err := initramfs.ParseModuleDB(nil, modulesBuiltin)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ParseAliases(modulesAlias); err != nil {
		t.Fatal(err)
	}
	loaded := strings.Fields(string(list))
	for name, dtb := range dtbs {
		tree, err := fdt.Parse(dtb)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		needs, err := db.StorageModules(name, tree, board.Storage)
		if err != nil {
			t.Fatal(err)
		}
		if err := initramfscheck.CheckLoaded(needs, loaded); err != nil {
			t.Errorf("board %s: %v (initramfs has %s)", board.Name, err, strings.Join(loaded, " "))
		}
		for _, n := range needs {
			t.Logf("%s: %s needs %s (%s)", name, n.Node, n.Module, n.Via)
		}
	}
}
