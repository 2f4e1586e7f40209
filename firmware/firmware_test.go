package firmware

import (
	"strings"
	"testing"
)

func TestAutobootSemantics(t *testing.T) {
	for _, c := range []struct {
		committed       string
		normal, tryboot int
	}{{"a", 2, 3}, {"b", 3, 2}} {
		data, err := AutobootTxt(c.committed)
		if err != nil {
			t.Fatal(err)
		}
		normal, tryboot, enabled, err := ParseAutoboot(data)
		if err != nil {
			t.Fatal(err)
		}
		if !enabled || normal != c.normal || tryboot != c.tryboot {
			t.Errorf("committed %s: normal %d tryboot %d enabled %v; want %d %d true\n%s", c.committed, normal, tryboot, enabled, c.normal, c.tryboot, data)
		}
		// The firmware needs tryboot_a_b=1 in [all] and nowhere else.
		if !strings.Contains(string(data), "[all]\ntryboot_a_b=1\n") {
			t.Errorf("tryboot_a_b not in [all]:\n%s", data)
		}
	}
	if _, err := AutobootTxt("c"); err == nil {
		t.Error("slot c accepted")
	}
	// Committing B after a successful trial of B swaps the numbers.
	a, _ := AutobootTxt("a")
	b, _ := AutobootTxt("b")
	na, ta, _, _ := ParseAutoboot(a)
	nb, tb, _, _ := ParseAutoboot(b)
	if na != tb || ta != nb {
		t.Errorf("commit does not swap: a=(%d,%d) b=(%d,%d)", na, ta, nb, tb)
	}
	if _, _, _, err := ParseAutoboot([]byte("[pi4]\nboot_partition=2\n")); err == nil {
		t.Error("a board filter in autoboot.txt accepted (the firmware only reads [all] and [tryboot])")
	}
}

func TestTrybootSlotFiles(t *testing.T) {
	b, _ := Lookup("pi4")
	cfg := string(TrybootConfigTxt(b, "vmlinuz", "initrd.img"))
	for _, want := range []string{"arm_64bit=1\n", "kernel=vmlinuz\n", "initramfs initrd.img followkernel\n"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config.txt lacks %q:\n%s", want, cfg)
		}
	}
	for slot, want := range map[string]string{"a": "root=PARTUUID=1234abcd-05 pibake.slot=a", "b": "root=PARTUUID=1234abcd-06 pibake.slot=b"} {
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
