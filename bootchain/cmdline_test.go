package bootchain

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseCmdline(t *testing.T) {
	c, err := ParseCmdline("console=ttyAMA0,115200 rootfstype=squashfs ro root=PARTUUID=1cf9920d-05 pibake.slot=a\n")
	if err != nil || c.Signature != 0x1cf9920d || c.RootPart != 5 || c.Slot != "a" || c.Init != "/sbin/init" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"ro quiet", "root=/dev/mmcblk0p5", "root=PARTUUID=xyz-05", "root=PARTUUID=6e4f3b2a-0c2f-4f1a-9e2d-5b1a2c3d4e5f"} {
		if _, err := ParseCmdline(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestCmdlineRoundTrip: what the writer gives each slot, the parser reads
// back as that slot, its root partition and the disk; and the U-Boot
// script's template, with its variables set as the script sets them for
// a slot, is that slot's command line.
func TestCmdlineRoundTrip(t *testing.T) {
	k := KernelCmdline{Args: "console=ttyS1,115200 rootfstype=squashfs ro rootwait", Signature: 0x0badcafe}
	for _, s := range Slots() {
		line, err := k.For(s)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ParseCmdline(line)
		if err != nil || c.Slot != s || c.RootPart != s.RootPartition() || c.Signature != k.Signature || c.Debug || c.Init != "/sbin/init" {
			t.Errorf("slot %s: %q reads as %+v (%v)", s, line, c, err)
		}
		expanded := strings.NewReplacer("${part}", fmt.Sprintf("%02x", s.RootPartition()), "${slot}", s.String()).Replace(k.Template("part", "slot"))
		if expanded != line {
			t.Errorf("slot %s: the script's bootargs %q, cmdline.txt %q", s, expanded, line)
		}
	}
}

func TestCmdlineUnknownSlot(t *testing.T) {
	if line, err := (KernelCmdline{Args: "ro", Signature: 1}).For("c"); err == nil {
		t.Errorf("slot c: %q", line)
	}
}
