package bootstate

import (
	"testing"

	"github.com/pibake/pibake/disk/layout"
)

// TestSlotsAreTheLayouts: the state's slot names are the layout's.
func TestSlotsAreTheLayouts(t *testing.T) {
	if len(layout.Slots) != 2 || layout.Slots[0].Name != string(A) || layout.Slots[1].Name != string(B) {
		t.Errorf("layout slots %v, boot state slots %s %s", layout.Slots, A, B)
	}
	if st, err := ParseState(Initial().Marshal()); err != nil || st.Primary() != A {
		t.Errorf("initial state: %+v %v", st, err)
	}
}
