package bootchain

import (
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
