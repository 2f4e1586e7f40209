// Package bootinit is pibake's initramfs init (cmd/pibake-init): it loads
// the kernel modules listed at build time, finds the booted slot's root
// partition, mounts it read-only, prepares the data partition (partition
// 7: grown to the end of the disk and formatted on first boot), overlays
// /etc and /var with writable layers kept on it, and hands over to systemd.
//
// It runs as PID 1 before any userspace exists, so it depends on nothing
// but the kernel: no cgo, no shell, no udev. When it cannot continue it
// reboots, so that the boot loader's try counter moves to the other slot.
package bootinit

import (
	"fmt"
	"strconv"
	"strings"
)

// Cmdline is what the init reads from the kernel command line.
type Cmdline struct {
	Signature uint32 // from root=PARTUUID=<sig>-<nn>
	RootPart  int
	Slot      string // pibake.slot=
	Init      string // init=, default /sbin/init
	Debug     bool   // pibake.debug
}

// ParseCmdline parses /proc/cmdline.
func ParseCmdline(s string) (Cmdline, error) {
	c := Cmdline{Init: "/sbin/init"}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "root":
			id, ok := strings.CutPrefix(v, "PARTUUID=")
			if !ok {
				return c, fmt.Errorf("root=%s: pibake-init needs root=PARTUUID=<signature>-<partition>", v)
			}
			sig, part, ok := strings.Cut(id, "-")
			s, err1 := strconv.ParseUint(sig, 16, 32)
			p, err2 := strconv.ParseUint(part, 16, 8)
			if !ok || err1 != nil || err2 != nil || len(sig) != 8 {
				return c, fmt.Errorf("root=%s: not an MBR PARTUUID (want 8 hex digits, '-', partition number)", v)
			}
			c.Signature, c.RootPart = uint32(s), int(p)
		case "pibake.slot":
			c.Slot = v
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
