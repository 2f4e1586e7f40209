package builder

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/builder/debian"
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

// bootSet is what the boot stage writes: bootsel's files and each boot
// slot's.
type bootSet struct {
	bootsel []fat.File
	slots   map[bootchain.Slot][]fat.File
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

// bootFiles gathers bootsel's files and each boot slot's, for the
// definition's boot chain.
func (b *build) bootFiles(ctx context.Context) (*bootSet, error) {
	def, board, rf := b.def, b.board, b.rf
	chain, err := bootchain.ParseChain(def.Bootloader)
	if err != nil {
		return nil, err
	}
	in := &bootInputs{board: board, sig: b.sig, cmdline: firmware.CmdlineArgs(board), rf: rf, initrd: b.initrd, lock: b.lock, cache: b.cache}
	info := SlotInfo{Image: def.Name, Version: def.Version, Board: board.Name, Env: orDefault(def.Env), Kernel: rf.res.KernelVersion,
		RootfsSHA256: rf.sha256, RootfsSize: rf.size, Compressor: rf.compressor, Bootloader: def.Bootloader, KernelCmdline: in.cmdline}
	meta, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	in.slot = []fat.File{
		{Path: KernelFile, Data: rf.res.Kernel},
		{Path: InitrdFile, Data: b.initrd},
		{Path: inspect.SlotInfoFile, Data: append(meta, '\n')},
	}
	if !board.Emulated {
		if in.dtbs, err = board.SlotDTBs(rf.res.DTBs); err != nil {
			return nil, err
		}
		if len(board.Firmware) > 0 {
			if in.fw, err = packageFiles(ctx, b.lock, b.cache, "raspi-firmware", func(p string) bool { return strings.HasPrefix(p, firmware.FirmwareDir+"/") }); err != nil {
				return nil, err
			}
		}
	}
	bs := &bootSet{bootsel: []fat.File{{Path: "pibake.txt", Data: []byte(bootselReadme)}}, slots: map[bootchain.Slot][]fat.File{}}
	if chain == bootchain.Tryboot {
		err = in.tryboot(bs)
	} else {
		err = in.uboot(ctx, bs)
	}
	if err != nil {
		return nil, err
	}
	return bs, nil
}

// bootInputs are what either chain's boot files are made of.
type bootInputs struct {
	board   firmware.Board
	sig     uint32
	cmdline string             // the board's kernel arguments
	slot    []fat.File         // what every slot holds: kernel, initramfs, pibake.json
	dtbs    []firmware.SlotDTB // the board's device trees (sources in rf.res.DTBs)
	fw      map[string][]byte  // raspi-firmware's files (Pi boards)
	rf      *rootfsOut
	initrd  []byte
	lock    *debian.Lock // for the U-Boot package
	cache   debian.Cache
}

// firmwareFiles are the Pi firmware's files the board needs.
func (in *bootInputs) firmwareFiles() ([]fat.File, error) {
	var out []fat.File
	for _, name := range in.board.Firmware {
		data, ok := in.fw[firmware.FirmwareDir+"/"+name]
		if !ok {
			return nil, fmt.Errorf("raspi-firmware has no %s (needed by board %s)", name, in.board.Name)
		}
		out = append(out, fat.File{Path: name, Data: data})
	}
	return out, nil
}

// tryboot: each slot is self-sufficient (firmware, config.txt, kernel,
// DTBs and its own cmdline.txt); bootsel only says which slot to start.
func (in *bootInputs) tryboot(bs *bootSet) error {
	fwf, err := in.firmwareFiles()
	if err != nil {
		return err
	}
	bs.bootsel = append(bs.bootsel, fat.File{Path: bootchain.AutobootFile, Data: bootchain.AutobootTxt(bootchain.A)})
	for _, s := range bootchain.Slots() {
		cl, err := firmware.TrybootCmdline(in.board, in.sig, s)
		if err != nil {
			return err
		}
		files := append(append([]fat.File(nil), in.slot...), fwf...)
		files = append(files,
			fat.File{Path: "config.txt", Data: firmware.TrybootConfigTxt(in.board, KernelFile, InitrdFile)},
			fat.File{Path: "cmdline.txt", Data: []byte(cl + "\n")})
		for _, d := range in.dtbs {
			files = append(files, fat.File{Path: d.Name, Data: in.rf.res.DTBs[d.Source]})
		}
		bs.slots[s] = files
	}
	return nil
}

// uboot: identical slots; the boot script adds root= and the slot.
func (in *bootInputs) uboot(ctx context.Context, bs *bootSet) error {
	board, rf := in.board, in.rf
	var fdtMax int64
	for _, d := range in.dtbs {
		fdtMax = max(fdtMax, int64(len(rf.res.DTBs[d.Source])))
	}
	loads, err := uboot.PlanLoads(board.Loads, rf.res.Kernel, int64(len(in.initrd)), fdtMax)
	if err != nil {
		return fmt.Errorf("board %s, kernel %s: %w", board.Name, rf.res.KernelVersion, err)
	}
	script, err := uboot.ScriptImage("pibake A/B boot", uboot.Script(uboot.ScriptParams{Signature: in.sig, Cmdline: in.cmdline, Kernel: KernelFile, Initrd: InitrdFile, Loads: loads, FDTVariants: board.FDTVariants}))
	if err != nil {
		return err
	}
	slot := append(in.slot, fat.File{Path: "cmdline.txt", Data: []byte(in.cmdline + "\n")})
	bs.bootsel = append(bs.bootsel,
		fat.File{Path: "boot.scr", Data: script},
		fat.File{Path: bootchain.StateFile, Data: bootchain.Initial().Marshal()},
		fat.File{Path: bootchain.AgentStateFile, Data: bootchain.Initial().Marshal()},
	)
	ub, err := packageFiles(ctx, in.lock, in.cache, board.UBootPackage, func(p string) bool { return p == board.UBoot })
	if err != nil {
		return err
	}
	if ub[board.UBoot] == nil {
		return fmt.Errorf("%s has no %s", board.UBootPackage, board.UBoot)
	}
	// On the Pi the firmware starts it; for QEMU it is kept here so that
	// 'pibake run' boots the image with the U-Boot it was built with.
	bs.bootsel = append(bs.bootsel, fat.File{Path: "u-boot.bin", Data: ub[board.UBoot]})
	if !board.Emulated {
		for _, d := range in.dtbs {
			// U-Boot loads broadcom/${fdtfile} from the slot.
			slot = append(slot, fat.File{Path: "broadcom/" + d.Name, Data: rf.res.DTBs[d.Source]})
			// The firmware hands U-Boot the device tree it finds on
			// bootsel; U-Boot runs on it and boots Linux with the slot's.
			bs.bootsel = append(bs.bootsel, fat.File{Path: d.Name, Data: rf.res.DTBs[d.Source]})
		}
		fwf, err := in.firmwareFiles()
		if err != nil {
			return err
		}
		bs.bootsel = append(bs.bootsel, fwf...)
		bs.bootsel = append(bs.bootsel, fat.File{Path: "config.txt", Data: firmware.ConfigTxt(board)})
	}
	for _, s := range bootchain.Slots() {
		bs.slots[s] = slot
	}
	return nil
}

// packageFiles reads files out of a locked boot package in the cache.
func packageFiles(ctx context.Context, lock *debian.Lock, cache debian.Cache, name string, want func(string) bool) (map[string][]byte, error) {
	p, ok := lock.Find(name, debian.RoleBoot)
	if !ok {
		return nil, fmt.Errorf("the lock has no boot package %s: run 'pibake lock'", name)
	}
	if err := cache.Verify(p); err != nil {
		return nil, err
	}
	return debian.ExtractFiles(ctx, cache.DebPath(p.SHA256), want)
}
