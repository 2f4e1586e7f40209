package bootinit

import "testing"

// FuzzParseCmdline: the kernel command line the boot script (or anyone
// with the card) wrote.
func FuzzParseCmdline(f *testing.F) {
	f.Add("console=ttyS1,115200 rootfstype=squashfs ro rootwait panic=10 root=PARTUUID=1cf9920d-05 pibake.slot=a")
	f.Add("root=PARTUUID=zz pibake.slot=c init=/bin/sh")
	f.Add("root=/dev/mmcblk0p5 pibake.slot=")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = ParseCmdline(s)
	})
}
