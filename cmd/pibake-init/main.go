// Command pibake-init is the init of pibake's initramfs; see package bootinit.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/pibake/pibake/bootinit"
	"golang.org/x/sys/unix"
)

func main() {
	err := bootinit.Main()
	// Main returns only on failure. Rebooting lets the boot loader count the
	// failed attempt and move on to the other slot.
	fmt.Fprintf(os.Stderr, "pibake-init: %v\npibake-init: rebooting in 10 s\n", err)
	if f, e := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); e == nil {
		fmt.Fprintf(f, "<2>pibake-init: %v; rebooting\n", err)
		f.Close()
	}
	time.Sleep(10 * time.Second)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	os.Exit(1)
}
