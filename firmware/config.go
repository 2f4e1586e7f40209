package firmware

import (
	"fmt"
	"strings"
)

// ConfigTxt is the firmware configuration on bootsel for the U-Boot chain:
// the firmware starts U-Boot in 64-bit mode, and U-Boot picks the slot.
func ConfigTxt(b Board) []byte {
	var s strings.Builder
	fmt.Fprintf(&s, "# Written by pibake for board %s (%s).\n", b.Name, b.Description)
	s.WriteString("# The firmware starts U-Boot; U-Boot's boot script picks slot A or B.\n")
	s.WriteString("arm_64bit=1\n")
	// Debian's kernel uses the upstream device tree names (bcm2837-*, bcm2711-*).
	s.WriteString("upstream_kernel=1\n")
	s.WriteString("kernel=u-boot.bin\n")
	s.WriteString("enable_uart=1\n")
	s.WriteString("disable_overscan=1\n")
	s.WriteString("disable_splash=1\n")
	return []byte(s.String())
}

// CmdlineArgs are the kernel arguments shared by both slots. The boot
// script adds the slot's own (root=PARTUUID=... pibake.slot=a|b), so boot-a
// and boot-b hold identical bytes and one update artifact fits either slot.
// panic=10 reboots a kernel that cannot go on, so the boot script's try
// counter moves to the other slot.
func CmdlineArgs(b Board) string {
	return fmt.Sprintf("console=%s rootfstype=squashfs ro rootwait panic=10", b.Console)
}
