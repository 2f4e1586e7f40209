package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/builder/imagedef"
	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/inspect"
	"github.com/pibake/pibake/firmware"
	"github.com/pibake/pibake/firmware/uboot"
)

// SlotInfo is pibake.json on each boot partition: what the slot holds.
type SlotInfo struct {
	Image         string `json:"image"`
	Version       string `json:"version"`
	Board         string `json:"board"`
	Env           string `json:"env"`
	Kernel        string `json:"kernel"`
	RootfsSHA256  string `json:"rootfs_sha256"`
	RootfsSize    int64  `json:"rootfs_size"`
	Compressor    string `json:"rootfs_compressor"`
	Bootloader    string `json:"bootloader"`
	KernelCmdline string `json:"cmdline"`
}

type bootSet struct {
	bootsel      []fat.File
	slotA, slotB []fat.File
}

const bootselReadme = `This partition (bootsel) is managed by pibake.
The Raspberry Pi firmware reads it first. With the U-Boot chain it holds the
firmware, U-Boot and the boot script that picks slot A (partitions 2 and 5)
or slot B (partitions 3 and 6). Partition 7 holds persistent data.
`

// Files the boot script loads from a slot's boot partition.
const (
	KernelFile = "vmlinuz"
	InitrdFile = "initrd.img"
)

func bootFiles(ctx context.Context, def *imagedef.Definition, board firmware.Board, lock *debian.Lock, cache debian.Cache, rf *rootfsOut, initrd []byte, sig uint32) (*bootSet, error) {
	bs := &bootSet{}
	cmdline := firmware.CmdlineArgs(board)
	info := SlotInfo{Image: def.Name, Version: def.Version, Board: board.Name, Env: orDefault(def.Env), Kernel: rf.res.KernelVersion,
		RootfsSHA256: rf.sha256, RootfsSize: rf.size, Compressor: rf.compressor, Bootloader: def.Bootloader, KernelCmdline: cmdline}
	meta, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	slot := []fat.File{
		{Path: KernelFile, Data: rf.res.Kernel},
		{Path: InitrdFile, Data: initrd},
		{Path: inspect.SlotInfoFile, Data: append(meta, '\n')},
	}
	bs.bootsel = append(bs.bootsel, fat.File{Path: "pibake.txt", Data: []byte(bootselReadme)})
	var dtbs []string
	var fw map[string][]byte
	if !board.Emulated {
		if dtbs, err = board.SelectDTBs(rf.res.DTBs); err != nil {
			return nil, err
		}
		if fw, err = packageFiles(ctx, lock, cache, "raspi-firmware", func(p string) bool { return strings.HasPrefix(p, firmware.FirmwareDir+"/") }); err != nil {
			return nil, err
		}
	}
	firmwareFiles := func() ([]fat.File, error) {
		var out []fat.File
		for _, name := range board.Firmware {
			data, ok := fw[firmware.FirmwareDir+"/"+name]
			if !ok {
				return nil, fmt.Errorf("boot: raspi-firmware has no %s (needed by board %s)", name, board.Name)
			}
			out = append(out, fat.File{Path: name, Data: data})
		}
		return out, nil
	}

	if def.Bootloader == "tryboot" {
		// Each slot is self-sufficient: firmware, config.txt, kernel, DTBs
		// and its own cmdline.txt; bootsel only says which slot to start.
		fwf, err := firmwareFiles()
		if err != nil {
			return nil, err
		}
		auto, err := firmware.AutobootTxt("a")
		if err != nil {
			return nil, err
		}
		bs.bootsel = append(bs.bootsel, fat.File{Path: "autoboot.txt", Data: auto})
		for _, s := range []string{"a", "b"} {
			cl, err := firmware.TrybootCmdline(board, sig, s)
			if err != nil {
				return nil, err
			}
			files := append(append([]fat.File(nil), slot...), fwf...)
			files = append(files,
				fat.File{Path: "config.txt", Data: firmware.TrybootConfigTxt(board, KernelFile, InitrdFile)},
				fat.File{Path: "cmdline.txt", Data: []byte(cl + "\n")})
			for _, name := range dtbs {
				files = append(files, fat.File{Path: name, Data: rf.res.DTBs[name]})
			}
			if s == "a" {
				bs.slotA = files
			} else {
				bs.slotB = files
			}
		}
		return bs, nil
	}

	// U-Boot chain: identical slots; the boot script adds root= and the slot.
	var fdtMax int64
	for _, name := range dtbs {
		fdtMax = max(fdtMax, int64(len(rf.res.DTBs[name])))
	}
	loads, err := uboot.PlanLoads(board.Loads, rf.res.Kernel, int64(len(initrd)), fdtMax)
	if err != nil {
		return nil, fmt.Errorf("boot: board %s, kernel %s: %w", board.Name, rf.res.KernelVersion, err)
	}
	script, err := uboot.ScriptImage("pibake A/B boot", uboot.Script(uboot.ScriptParams{Signature: sig, Cmdline: cmdline, Kernel: KernelFile, Initrd: InitrdFile, Loads: loads}))
	if err != nil {
		return nil, err
	}
	slot = append(slot, fat.File{Path: "cmdline.txt", Data: []byte(cmdline + "\n")})
	bs.bootsel = append(bs.bootsel,
		fat.File{Path: "boot.scr", Data: script},
		fat.File{Path: uboot.StateFile, Data: uboot.InitialState().Marshal()},
		fat.File{Path: uboot.AgentStateFile, Data: uboot.InitialState().Marshal()},
	)
	ub, err := packageFiles(ctx, lock, cache, board.UBootPackage, func(p string) bool { return p == board.UBoot })
	if err != nil {
		return nil, err
	}
	if ub[board.UBoot] == nil {
		return nil, fmt.Errorf("boot: %s has no %s", board.UBootPackage, board.UBoot)
	}
	// On the Pi the firmware starts it; for QEMU it is kept here so that
	// 'pibake run' boots the image with the U-Boot it was built with.
	bs.bootsel = append(bs.bootsel, fat.File{Path: "u-boot.bin", Data: ub[board.UBoot]})
	if !board.Emulated {
		for _, name := range dtbs {
			slot = append(slot, fat.File{Path: "broadcom/" + name, Data: rf.res.DTBs[name]})
			// The firmware hands U-Boot the device tree it finds on bootsel.
			bs.bootsel = append(bs.bootsel, fat.File{Path: name, Data: rf.res.DTBs[name]})
		}
		fwf, err := firmwareFiles()
		if err != nil {
			return nil, err
		}
		bs.bootsel = append(bs.bootsel, fwf...)
		bs.bootsel = append(bs.bootsel, fat.File{Path: "config.txt", Data: firmware.ConfigTxt(board)})
	}
	bs.slotA, bs.slotB = slot, slot
	return bs, nil
}

// packageFiles reads files out of a locked boot package in the cache.
func packageFiles(ctx context.Context, lock *debian.Lock, cache debian.Cache, name string, want func(string) bool) (map[string][]byte, error) {
	p, ok := lock.Find(name, debian.RoleBoot)
	if !ok {
		return nil, fmt.Errorf("boot: the lock has no boot package %s: run 'pibake lock'", name)
	}
	if err := cache.Verify(p); err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	files, err := debian.ExtractFiles(ctx, cache.DebPath(p.SHA256), want)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	return files, nil
}
