package firmware

import (
	"strings"
	"testing"

	"github.com/pibake/pibake/bootchain"
)

func TestTrybootSlotFiles(t *testing.T) {
	b, _ := Lookup("pi4")
	cfg := string(TrybootConfigTxt(b, "vmlinuz", "initrd.img"))
	for _, want := range []string{"arm_64bit=1\n", "kernel=vmlinuz\n", "initramfs initrd.img followkernel\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config.txt lacks %q:\n%s", want, cfg)
		}
	}
	for slot, want := range map[bootchain.Slot]string{bootchain.A: "root=PARTUUID=1234abcd-05 pibake.slot=a", bootchain.B: "root=PARTUUID=1234abcd-06 pibake.slot=b"} {
		c, err := TrybootCmdline(b, 0x1234abcd, slot)
		if err != nil || !strings.HasSuffix(c, want) || !strings.Contains(c, "rootfstype=squashfs") {
			t.Errorf("slot %s cmdline %q (%v), want ...%s", slot, c, err, want)
		}
	}
}

func TestConfigTxtStartsUBoot(t *testing.T) {
	for _, name := range []string{"pi3", "pi4"} {
		b, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := string(ConfigTxt(b))
		for _, want := range []string{"arm_64bit=1\n", "kernel=u-boot.bin\n", "upstream_kernel=1\n", "enable_uart=1\n"} {
			if !strings.Contains(cfg, want) {
				t.Errorf("%s config.txt lacks %q", name, want)
			}
		}
	}
	if _, err := Lookup("pi9"); err == nil {
		t.Error("unknown board accepted")
	}
}
