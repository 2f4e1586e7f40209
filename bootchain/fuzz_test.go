package bootchain

import (
	"bytes"
	"testing"
)

// FuzzParseState: pibake.env as U-Boot or a torn write left it.
func FuzzParseState(f *testing.F) {
	f.Add([]byte("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n"))
	f.Add([]byte("BOOT_A_LEFT=2\nBOOT_B_LEFT=0\nBOOT_ORDER=B A\n\x00"))
	f.Add([]byte("BOOT_ORDER=A C\n"))
	f.Add([]byte("BOOT_A_LEFT=-1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		again, err := ParseState(st.Marshal())
		if err != nil || !bytes.Equal(again.Marshal(), st.Marshal()) {
			t.Fatalf("round trip: %q → %q (%v)", st.Marshal(), again.Marshal(), err)
		}
		if s := st.Primary(); s != A && s != B {
			t.Fatalf("primary %q", s)
		}
		if s, _ := st.Boot(); s != A && s != B {
			t.Fatalf("boots %q", s)
		}
	})
}

// FuzzParseAutoboot: autoboot.txt from the FAT partition.
func FuzzParseAutoboot(f *testing.F) {
	f.Add(AutobootTxt(A))
	f.Add(AutobootTxt(B))
	f.Add([]byte("[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n[pi4]\n"))
	f.Add([]byte("boot_partition"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _, _ = ParseAutoboot(data)
	})
}

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
