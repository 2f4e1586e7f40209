// Package bootloader is the updater's view of the A/B boot chain, behind
// one small interface with a backend per chain: the U-Boot script's state
// file (pibake.env on bootsel, declared in internal/bootstate) and the Pi
// firmware's tryboot (autoboot.txt). Their fakes for tests, with what
// happens at power-on, are in boottest.
//
// Semantics (RAUC's bootchooser is the model): the primary slot is the first
// slot in BOOT_ORDER with tries left; TryOnce puts a slot first with a
// single try, so the next boot starts it once and any later boot falls back
// to the old primary; MarkGood gives a slot full tries and puts it first;
// MarkBad takes its tries away.
package bootloader

import "github.com/pibake/pibake/internal/bootstate"

// The boot state, declared once in internal/bootstate.
type (
	Slot     = bootstate.Slot
	State    = bootstate.State
	Evidence = bootstate.Evidence
)

// Slots, answers of Tried, and the state's limits.
const (
	A        = bootstate.A
	B        = bootstate.B
	Unknown  = bootstate.Unknown
	Yes      = bootstate.Yes
	No       = bootstate.No
	MaxTries = bootstate.MaxTries
)

// StateFile and AgentStateFile are the boot state's files on bootsel.
const (
	StateFile      = bootstate.StateFile
	AgentStateFile = bootstate.AgentStateFile
)

// ErrState means the state file cannot be understood.
var ErrState = bootstate.ErrState

// ParseSlot accepts "a"/"b" in any case.
func ParseSlot(s string) (Slot, error) { return bootstate.ParseSlot(s) }

// ParseState reads the state file as U-Boot's env export writes it.
func ParseState(data []byte) (State, error) { return bootstate.ParseState(data) }

// Bootloader is what the updater asks of a boot chain.
type Bootloader interface {
	// Primary is the slot the next normal boot starts.
	Primary() (Slot, error)
	// TryOnce makes the next boot start s once; a boot after that starts
	// the previous primary unless MarkGood(s) ran.
	TryOnce(s Slot) error
	// MarkGood makes s the primary with full tries.
	MarkGood(s Slot) error
	// MarkBad keeps s from being booted. The agent calls it before the
	// first byte of an install goes to s, so a slot being written is never
	// a fallback.
	MarkBad(s Slot) error
	// Tried reports what the boot loader knows of a trial of s armed by
	// TryOnce: Yes if a boot has spent it, No if it is still armed or was
	// never armed, Unknown if the chain keeps no such record (tryboot's
	// flag is one-shot and leaves no trace).
	Tried(s Slot) (Evidence, error)
}
