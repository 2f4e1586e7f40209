package firmware

import (
	"fmt"
	"strings"
)

// Tryboot chain (bootloader: tryboot): the Pi firmware itself picks the
// slot. autoboot.txt on bootsel names the committed slot's boot partition;
// `reboot "0 tryboot"` makes the next boot (only) use the [tryboot]
// section, and any reset falls back. Committing a slot rewrites
// autoboot.txt with the numbers swapped. Needs a Pi 4/400/CM4 or later,
// bootloader EEPROM 2022-12-01 or newer, and a Raspberry Pi kernel: only
// it passes the tryboot flag to the firmware on reboot (Debian's
// linux-image-arm64 ignores the reboot argument).

// BootPartition is the partition number of a slot's boot partition.
func BootPartition(slot string) (int, error) {
	switch slot {
	case "a":
		return 2, nil
	case "b":
		return 3, nil
	}
	return 0, fmt.Errorf("unknown slot %q (want a or b)", slot)
}

// AutobootTxt makes autoboot.txt with committed the slot booted normally
// and the other one the slot a tryboot reboot starts once.
func AutobootTxt(committed string) ([]byte, error) {
	cur, err := BootPartition(committed)
	if err != nil {
		return nil, err
	}
	other := 5 - cur // 2 <-> 3
	return []byte(fmt.Sprintf("# Written by pibake: slot %s is committed.\n[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n", committed, cur, other)), nil
}

// ParseAutoboot returns the boot partition used normally and on a tryboot
// reboot, following the firmware's reading: [all] applies always,
// [tryboot] only on a tryboot boot, later lines override earlier ones.
func ParseAutoboot(data []byte) (normal, tryboot int, enabled bool, err error) {
	section := "all"
	vals := map[string]map[string]string{"all": {}, "tryboot": {}}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSuffix(strings.TrimPrefix(line, "["), "]")
			if _, ok := vals[section]; !ok {
				return 0, 0, false, fmt.Errorf("autoboot.txt line %d: section [%s]: only [all] and [tryboot] are allowed", i+1, section)
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return 0, 0, false, fmt.Errorf("autoboot.txt line %d: %q is not key=value", i+1, line)
		}
		vals[section][k] = v
	}
	get := func(m map[string]string, k string) int {
		var n int
		fmt.Sscan(m[k], &n)
		return n
	}
	normal = get(vals["all"], "boot_partition")
	tryboot = normal
	if _, ok := vals["tryboot"]["boot_partition"]; ok {
		tryboot = get(vals["tryboot"], "boot_partition")
	}
	enabled = vals["all"]["tryboot_a_b"] == "1"
	return normal, tryboot, enabled, nil
}

// TrybootConfigTxt is config.txt inside each boot slot of a tryboot image:
// the firmware boots the Linux kernel of that partition directly.
func TrybootConfigTxt(b Board, kernel, initrd string) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, "# Written by pibake for board %s, tryboot chain: this partition is one slot.\n", b.Name)
	s.WriteString("arm_64bit=1\n")
	fmt.Fprintf(&s, "kernel=%s\n", kernel)
	fmt.Fprintf(&s, "initramfs %s followkernel\n", initrd)
	s.WriteString("enable_uart=1\n")
	s.WriteString("disable_overscan=1\n")
	return []byte(s.String())
}

// TrybootCmdline is cmdline.txt of one slot in a tryboot image: the
// firmware passes it as is, so it names the slot's own root partition.
func TrybootCmdline(b Board, signature uint32, slot string) (string, error) {
	p, err := BootPartition(slot)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s root=PARTUUID=%08x-%02x pibake.slot=%s", CmdlineArgs(b), signature, p+3, slot), nil
}
