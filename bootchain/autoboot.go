package bootchain

import (
	"fmt"
	"strings"
)

// The Pi firmware's own A/B (bootloader: tryboot): autoboot.txt on bootsel
// names the committed slot's boot partition in [all] and the other one in
// [tryboot]; a reboot with the tryboot flag starts the [tryboot] partition
// once, any other start the committed one.

// AutobootFile is the tryboot chain's state file on bootsel.
const AutobootFile = "autoboot.txt"

// The sections of autoboot.txt the firmware reads.
const (
	sectionAll     = "all"
	sectionTryboot = "tryboot"
)

// AutobootTxt makes autoboot.txt with committed the slot booted normally
// and the other one the slot a tryboot reboot starts once.
func AutobootTxt(committed Slot) []byte {
	return []byte(fmt.Sprintf("# Written by pibake: slot %s is committed.\n[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n",
		committed, committed.BootPartition(), committed.Other().BootPartition()))
}

// ParseAutoboot returns the boot partition used normally and on a tryboot
// reboot, following the firmware's reading: [all] applies always,
// [tryboot] only on a tryboot boot, later lines override earlier ones.
func ParseAutoboot(data []byte) (normal, tryboot int, enabled bool, err error) {
	section := sectionAll
	vals := map[string]map[string]string{sectionAll: {}, sectionTryboot: {}}
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
	normal = get(vals[sectionAll], "boot_partition")
	tryboot = normal
	if _, ok := vals[sectionTryboot]["boot_partition"]; ok {
		tryboot = get(vals[sectionTryboot], "boot_partition")
	}
	enabled = vals[sectionAll]["tryboot_a_b"] == "1"
	return normal, tryboot, enabled, nil
}
