package bootchain

import (
	"strings"
	"testing"
)

func TestAutobootSemantics(t *testing.T) {
	for _, c := range []struct {
		committed       Slot
		normal, tryboot int
	}{{A, 2, 3}, {B, 3, 2}} {
		data := AutobootTxt(c.committed)
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
	// Committing B after a successful trial of B swaps the numbers.
	a := AutobootTxt(A)
	b := AutobootTxt(B)
	na, ta, _, _ := ParseAutoboot(a)
	nb, tb, _, _ := ParseAutoboot(b)
	if na != tb || ta != nb {
		t.Errorf("commit does not swap: a=(%d,%d) b=(%d,%d)", na, ta, nb, tb)
	}
	if _, _, _, err := ParseAutoboot([]byte("[pi4]\nboot_partition=2\n")); err == nil {
		t.Error("a board filter in autoboot.txt accepted (the firmware only reads [all] and [tryboot])")
	}
}
