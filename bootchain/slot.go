// Package bootchain is what the builder, the boot script generator, the
// initramfs init and the device agent agree on about booting an A/B
// image, declared once:
//
//   - the slots (A and B) and the partitions of disk/layout each one
//     boots from;
//   - the boot chain kinds (U-Boot's script, the Pi firmware's tryboot)
//     and their names in image definitions, manifests and updater.yaml;
//   - the U-Boot chain's state (pibake.env on bootsel), its parser and its
//     transitions: what the agent does to it and what the script does at
//     power-on;
//   - the tryboot chain's autoboot.txt, its writer and its parser;
//   - the kernel command line that tells the init and the agent which
//     slot booted: one writer and one parser.
//
// It holds types and pure functions only, and imports nothing of pibake
// but disk/layout, so that the builder (a build host) and the agent and
// init (on the device) can both import it without pulling in each other.
package bootchain

import (
	"fmt"
	"strings"

	"github.com/pibake/pibake/disk/layout"
)

// Slot names an A/B slot: "a" or "b", as pibake.slot= writes it.
type Slot string

// The slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// Slots lists the slots in the layout's order.
func Slots() []Slot { return []Slot{A, B} }

// parts are the partitions of disk/layout each slot boots from.
var parts = map[Slot]struct{ boot, root string }{
	A: {layout.BootA, layout.RootA},
	B: {layout.BootB, layout.RootB},
}

// ParseSlot accepts "a"/"b" in any case.
func ParseSlot(s string) (Slot, error) {
	slot := Slot(strings.ToLower(s))
	if _, ok := parts[slot]; !ok {
		return "", fmt.Errorf("unknown slot %q (want a or b)", s)
	}
	return slot, nil
}

// Check reports a Slot that is not one of the layout's (a conversion
// from a string that ParseSlot did not check).
func (s Slot) Check() error {
	if _, ok := parts[s]; !ok {
		return fmt.Errorf("unknown slot %q (want a or b)", string(s))
	}
	return nil
}

// String is the slot's name, "a" or "b".
func (s Slot) String() string { return string(s) }

// Key is the slot's name as the U-Boot state file and script spell it:
// "A" or "B".
func (s Slot) Key() string { return strings.ToUpper(string(s)) }

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// Boot and Root are the names in disk/layout of the slot's boot and root
// partitions ("" for a name that is not a slot).
func (s Slot) Boot() string { return parts[s].boot }

// Root is the name in disk/layout of the slot's root partition.
func (s Slot) Root() string { return parts[s].root }

// BootPartition and RootPartition are the Linux partition numbers of the
// slot's partitions; 0, which no partition has, for a name that is not a
// slot (ParseSlot refuses those).
func (s Slot) BootPartition() int { return number(s.Boot()) }

// RootPartition is the Linux partition number of the slot's root
// partition (0 for a name that is not a slot).
func (s Slot) RootPartition() int { return number(s.Root()) }

func number(partition string) int {
	sp, _ := layout.Find(partition)
	return sp.Number
}

// SlotOf returns the slot a partition of disk/layout (by name) belongs
// to, if any.
func SlotOf(partition string) (Slot, bool) {
	for _, s := range Slots() {
		if partition == s.Boot() || partition == s.Root() {
			return s, true
		}
	}
	return "", false
}

// SlotBootingFrom returns the slot whose boot partition has the given
// number, if any.
func SlotBootingFrom(partition int) (Slot, bool) {
	for _, s := range Slots() {
		if s.BootPartition() == partition {
			return s, true
		}
	}
	return "", false
}
