package bootchain

import (
	"testing"

	"github.com/pibake/pibake/disk/layout"
)

func TestParseSlot(t *testing.T) {
	for in, want := range map[string]Slot{"a": A, "A": A, "b": B, "B": B} {
		if s, err := ParseSlot(in); err != nil || s != want {
			t.Errorf("%q: %q %v", in, s, err)
		}
	}
	for _, bad := range []string{"", "c", "ab", " a"} {
		if s, err := ParseSlot(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, s)
		}
	}
	if A.Other() != B || B.Other() != A || A.Key() != "A" || B.Key() != "B" {
		t.Error("Other or Key")
	}
}

// TestUnknownSlot: a Slot converted from a string nobody checked has no
// partitions and says so; nothing panics.
func TestUnknownSlot(t *testing.T) {
	c := Slot("c")
	if c.Check() == nil || A.Check() != nil || B.Check() != nil {
		t.Error("Check")
	}
	if c.Boot() != "" || c.Root() != "" || c.BootPartition() != 0 || c.RootPartition() != 0 {
		t.Errorf("slot c: %q %q %d %d", c.Boot(), c.Root(), c.BootPartition(), c.RootPartition())
	}
}

func TestSlotOf(t *testing.T) {
	for _, sp := range layout.Table {
		s, ok := SlotOf(sp.Name)
		want := map[string]Slot{layout.BootA: A, layout.RootA: A, layout.BootB: B, layout.RootB: B}[sp.Name]
		if s != want || ok != (want != "") {
			t.Errorf("partition %s: slot %q %v, want %q", sp.Name, s, ok, want)
		}
		s, ok = SlotBootingFrom(sp.Number)
		want = map[string]Slot{layout.BootA: A, layout.BootB: B}[sp.Name]
		if s != want || ok != (want != "") {
			t.Errorf("partition %d boots slot %q %v, want %q", sp.Number, s, ok, want)
		}
	}
}
