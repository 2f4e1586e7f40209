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
