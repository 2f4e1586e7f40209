package bootchain

import "testing"

func TestParseChain(t *testing.T) {
	for in, want := range map[string]Chain{"": UBoot, "uboot": UBoot, "tryboot": Tryboot} {
		if c, err := ParseChain(in); err != nil || c != want {
			t.Errorf("%q: %q %v", in, c, err)
		}
	}
	for _, bad := range []string{"UBoot", "grub", " tryboot"} {
		if c, err := ParseChain(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, c)
		}
	}
	if _, err := ParseChain("grub"); err == nil || err.Error() != `bootloader "grub": want uboot or tryboot` {
		t.Errorf("error %v", err)
	}
	if DefaultChain != UBoot || len(ChainNames()) != 2 || ChainNames()[0] != "uboot" {
		t.Errorf("default %s, names %v", DefaultChain, ChainNames())
	}
}
