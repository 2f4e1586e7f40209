package firmware

import (
	"fmt"
	"strings"

	"github.com/pibake/pibake/bootchain"
)

// Tryboot chain (bootloader: tryboot): the Pi firmware itself picks the
// slot. autoboot.txt on bootsel names the committed slot's boot partition;
// `reboot "0 tryboot"` makes the next boot (only) use the [tryboot]
// section, and any reset falls back. Committing a slot rewrites
// autoboot.txt with the numbers swapped. Needs a Pi 4/400/CM4 or later,
// bootloader EEPROM 2022-12-01 or newer, and a Raspberry Pi kernel: only
// it passes the tryboot flag to the firmware on reboot (Debian's
// linux-image-arm64 ignores the reboot argument).

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
// autoboot.txt on bootsel, which picks the slot, is bootchain's.
func TrybootCmdline(b Board, signature uint32, s bootchain.Slot) (string, error) {
	return bootchain.KernelCmdline{Args: CmdlineArgs(b), Signature: signature}.For(s)
}
