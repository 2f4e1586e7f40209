// Package bootloader is the updater's view of the A/B boot chain, behind
// one small interface with a backend per chain: the U-Boot script's state
// file (pibake.env on bootsel) and the Pi firmware's tryboot
// (autoboot.txt), both files declared in bootchain. Their fakes for tests,
// with what happens at power-on, are in boottest.
//
// Semantics (RAUC's bootchooser is the model): the primary slot is the first
// slot in BOOT_ORDER with tries left; TryOnce puts a slot first with a
// single try, so the next boot starts it once and any later boot falls back
// to the old primary; MarkGood gives a slot full tries and puts it first;
// MarkBad takes its tries away.
package bootloader

import (
	"fmt"
	"strings"

	"github.com/pibake/pibake/bootchain"
)

// Bootloader is what the updater asks of a boot chain.
type Bootloader interface {
	// Primary is the slot the next normal boot starts.
	Primary() (bootchain.Slot, error)
	// TryOnce makes the next boot start s once; a boot after that starts
	// the previous primary unless MarkGood(s) ran.
	TryOnce(s bootchain.Slot) error
	// MarkGood makes s the primary with full tries.
	MarkGood(s bootchain.Slot) error
	// MarkBad keeps s from being booted. The agent calls it before the
	// first byte of an install goes to s, so a slot being written is never
	// a fallback.
	MarkBad(s bootchain.Slot) error
	// Tried reports what the boot loader knows of a trial of s armed by
	// TryOnce: Yes if a boot has spent it, No if it is still armed or was
	// never armed, Unknown if the chain keeps no such record (tryboot's
	// flag is one-shot and leaves no trace).
	Tried(s bootchain.Slot) (bootchain.Evidence, error)
}

// Describe is one line on the state chain c keeps in dir (bootsel), for
// status output; "" when it cannot be read.
func Describe(c bootchain.Chain, dir string) string {
	if c == bootchain.Tryboot {
		s, err := Tryboot{Dir: dir}.Primary()
		if err != nil {
			return ""
		}
		return fmt.Sprintf("tryboot: slot %s committed (%s)", s, bootchain.AutobootFile)
	}
	st, err := UBoot{Dir: dir}.State()
	if err != nil {
		return ""
	}
	return strings.ReplaceAll(strings.TrimSpace(string(st.Marshal())), "\n", " ")
}
