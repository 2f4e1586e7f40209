package bootchain

import (
	"errors"
	"testing"

	"github.com/pibake/pibake/disk/layout"
)

// TestSlotsAreTheLayouts: the state's slots boot from the layout's
// partitions of the same letter.
func TestSlotsAreTheLayouts(t *testing.T) {
	if got := Slots(); len(got) != 2 || got[0] != A || got[1] != B {
		t.Errorf("slots %v, want a b", got)
	}
	for _, c := range []struct {
		s          Slot
		boot, root string
	}{{A, layout.BootA, layout.RootA}, {B, layout.BootB, layout.RootB}} {
		if c.s.Boot() != c.boot || c.s.Root() != c.root || c.s.BootPartition() != layout.Number(c.boot) || c.s.RootPartition() != layout.Number(c.root) {
			t.Errorf("slot %s: %s (%d), %s (%d)", c.s, c.s.Boot(), c.s.BootPartition(), c.s.Root(), c.s.RootPartition())
		}
	}
	if st, err := ParseState(Initial().Marshal()); err != nil || st.Primary() != A {
		t.Errorf("initial state: %+v %v", st, err)
	}
}

// TestInitialState: the state a build writes is A first with full tries,
// and reads back as it was written.
func TestInitialState(t *testing.T) {
	st, err := ParseState(Initial().Marshal())
	if err != nil || st.Primary() != A || st.Left[A] != MaxTries || st.Left[B] != MaxTries {
		t.Fatalf("%+v %v", st, err)
	}
	if string(st.Marshal()) != string(Initial().Marshal()) {
		t.Errorf("round trip differs: %q", st.Marshal())
	}
	if _, ok := ParseComplete(Initial().Marshal()); !ok {
		t.Error("the initial state is not complete")
	}
	for _, torn := range []string{"", "BOOT_ORDER=B A\nBOOT_A_", "\x00\x00\x00", "BOOT_ORDER=A A\n"} {
		if _, ok := ParseComplete([]byte(torn)); ok {
			t.Errorf("%q taken for a complete state", torn)
		}
	}
}

// TestParseStateAsTheScript: ParseState reads the file as U-Boot's env
// import does and accepts exactly what the boot script accepts (the
// script's own test runs it against these rules); anything else is
// ErrState, so the script and the agent both fall back to the copy.
func TestParseStateAsTheScript(t *testing.T) {
	for _, c := range []struct {
		in       string
		want     string // Marshal of the result; "" for ErrState
		complete bool
	}{
		{"BOOT_ORDER=B A\nBOOT_A_LEFT=0\nBOOT_B_LEFT=2\n", "BOOT_ORDER=B A\nBOOT_A_LEFT=0\nBOOT_B_LEFT=2\n", true},
		{"BOOT_ORDER=B\tA\n  BOOT_A_LEFT=9\n# a comment\nBOOT_B_LEFT=\\2\n\x00BOOT_B_LEFT=1", "BOOT_ORDER=B A\nBOOT_A_LEFT=9\nBOOT_B_LEFT=2\n", true},
		{"BOOT_ORDER=B A\nno value here\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\n", "BOOT_ORDER=B A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\n", true},
		{"BOOT_ORDER=B A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=\n", "BOOT_ORDER=B A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=3\n", false},
		{"BOOT_ORDER=B A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\nBOOT_ORDER\n", "BOOT_ORDER=A B\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\n", false},
		{"BOOT_ORDER=\\\nB A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\n", "BOOT_ORDER=B A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=1\n", true},
	} {
		st, err := ParseState([]byte(c.in))
		if err != nil || string(st.Marshal()) != c.want {
			t.Errorf("%q: %q, %v; want %q", c.in, st.Marshal(), err, c.want)
		}
		if _, ok := ParseComplete([]byte(c.in)); ok != c.complete {
			t.Errorf("%q: complete %v, want %v", c.in, ok, c.complete)
		}
	}
	for _, bad := range []string{"BOOT_ORDER=C", "BOOT_ORDER=A C", "BOOT_ORDER=X Y", "BOOT_ORDER=a b", "BOOT_ORDER=A B C", "BOOT_ORDER=B",
		"BOOT_ORDER=A A", "BOOT_A_LEFT=x", "BOOT_A_LEFT=-1", "BOOT_A_LEFT=10", "BOOT_A_LEFT=3 ", "BOOT_B_LEFT=+3", "BOOT_B_LEFT=3\r"} {
		if _, err := ParseState([]byte(bad + "\n")); !errors.Is(err, ErrState) {
			t.Errorf("%q: %v, want ErrState", bad, err)
		}
	}
}
