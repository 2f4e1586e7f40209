package bootchain

import (
	"fmt"
	"strconv"
	"strings"
)

// The kernel command line is how the boot chain tells the init and the
// agent what it booted: root=PARTUUID=<disk signature>-<root partition>
// names the disk and the slot's root partition, pibake.slot= the slot.
// KernelCmdline writes it (the tryboot chain's cmdline.txt, the U-Boot
// script's bootargs) and ParseCmdline reads it (pibake-init, the agent);
// builder/system's boot-ok reads it in shell, tested against this writer.

// SlotParam is the kernel parameter naming the booted slot.
const SlotParam = "pibake.slot"

// KernelCmdline writes the command line a slot boots with.
type KernelCmdline struct {
	Args      string // the board's arguments, the same for both slots
	Signature uint32 // the MBR disk signature
}

// For returns the command line slot s boots with, as the tryboot chain's
// cmdline.txt of that slot holds it.
func (k KernelCmdline) For(s Slot) (string, error) {
	if err := s.Check(); err != nil {
		return "", fmt.Errorf("kernel command line: %w", err)
	}
	return k.with(fmt.Sprintf("%02x", s.RootPartition()), s.String()), nil
}

// Template returns the command line with the root partition (two hex
// digits) and the slot left to U-Boot variables: the boot script sets
// rootPartVar and slotVar once it has picked a slot.
func (k KernelCmdline) Template(rootPartVar, slotVar string) string {
	return k.with("${"+rootPartVar+"}", "${"+slotVar+"}")
}

func (k KernelCmdline) with(rootPart, slot string) string {
	return fmt.Sprintf("%s root=PARTUUID=%08x-%s %s=%s", k.Args, k.Signature, rootPart, SlotParam, slot)
}

// Cmdline is what the init and the agent read from the kernel command
// line.
type Cmdline struct {
	Signature uint32 // from root=PARTUUID=<sig>-<nn>
	RootPart  int
	// Slot is pibake.slot= as written, "" without one: the init only logs
	// it; the agent checks it with ParseSlot.
	Slot  Slot
	Init  string // init=, default /sbin/init
	Debug bool   // pibake.debug
}

// ParseCmdline parses /proc/cmdline.
func ParseCmdline(s string) (Cmdline, error) {
	c := Cmdline{Init: "/sbin/init"}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "root":
			sig, part, err := parseRoot(v)
			if err != nil {
				return c, err
			}
			c.Signature, c.RootPart = sig, part
		case SlotParam:
			c.Slot = Slot(v)
		case "init":
			c.Init = v
		case "pibake.debug":
			c.Debug = true
		}
	}
	if c.RootPart == 0 {
		return c, fmt.Errorf("no root=PARTUUID= on the kernel command line %q", strings.TrimSpace(s))
	}
	return c, nil
}

// parseRoot reads root='s value, PARTUUID=<8 hex digits>-<partition>.
func parseRoot(v string) (uint32, int, error) {
	id, ok := strings.CutPrefix(v, "PARTUUID=")
	if !ok {
		return 0, 0, fmt.Errorf("root=%s: pibake-init needs root=PARTUUID=<signature>-<partition>", v)
	}
	sig, part, ok := strings.Cut(id, "-")
	s, err1 := strconv.ParseUint(sig, 16, 32)
	p, err2 := strconv.ParseUint(part, 16, 8)
	if !ok || err1 != nil || err2 != nil || len(sig) != 8 {
		return 0, 0, fmt.Errorf("root=%s: not an MBR PARTUUID (want 8 hex digits, '-', partition number)", v)
	}
	return uint32(s), int(p), nil
}
