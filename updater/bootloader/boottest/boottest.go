// Package boottest holds fakes of the boot chains for tests: Fake, the
// U-Boot script's semantics with power-on (bootchain's State.Boot), and
// Tryboot, the firmware's one-shot flag. They are kept out of the agent's
// production packages.
package boottest

import (
	"fmt"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/bootloader"
)

// Fake is an in-memory U-Boot chain for tests: the same transitions as
// bootloader.UBoot, plus PowerOn, which does what the boot script does.
type Fake struct {
	St bootchain.State
	// Copy is the agent's copy of the state (AgentStateFile); Torn means
	// StateFile was torn by U-Boot's own write, so the script reads Copy.
	Copy bootchain.State
	Torn bool
	// Writes counts state writes; FailAfter > 0 makes write number
	// FailAfter and later fail (a power cut: the write does not happen).
	Writes, FailAfter int
}

// NewFake starts from the state a fresh image has.
func NewFake() *Fake {
	st, _ := bootchain.ParseState(nil)
	return &Fake{St: st, Copy: st.Clone()}
}

// ErrPowerCut is returned by writes after the cut.
var ErrPowerCut = errPowerCut{}

type errPowerCut struct{}

func (errPowerCut) Error() string { return "power cut" }

func (f *Fake) write(st bootchain.State) error {
	f.Writes++
	if f.FailAfter > 0 && f.Writes >= f.FailAfter {
		return ErrPowerCut
	}
	f.St, f.Copy, f.Torn = st, st.Clone(), false
	return nil
}

// current is the state the agent and the script start from.
func (f *Fake) current() bootchain.State {
	if f.Torn {
		return f.Copy
	}
	return f.St
}

// Primary implements Bootloader.
func (f *Fake) Primary() (bootchain.Slot, error) { return f.current().Primary(), nil }

// TryOnce implements Bootloader.
func (f *Fake) TryOnce(s bootchain.Slot) error { return f.write(f.current().TryOnce(s)) }

// MarkGood implements Bootloader.
func (f *Fake) MarkGood(s bootchain.Slot) error { return f.write(f.current().MarkGood(s)) }

// MarkBad implements Bootloader.
func (f *Fake) MarkBad(s bootchain.Slot) error { return f.write(f.current().MarkBad(s)) }

// Tried implements Bootloader.
func (f *Fake) Tried(s bootchain.Slot) (bootchain.Evidence, error) { return f.current().Tried(s), nil }

// PowerOn runs the boot script: it returns the slot that starts.
func (f *Fake) PowerOn() bootchain.Slot {
	s, st := f.current().Boot()
	f.St, f.Torn = st, false
	return s
}

// PowerOnTorn is PowerOn with a power cut during the script's own write
// of StateFile: the slot starts, and StateFile is left unreadable.
func (f *Fake) PowerOnTorn() bootchain.Slot {
	s, _ := f.current().Boot()
	f.Torn = true
	return s
}

// Tryboot models the tryboot chain for tests: the committed slot, and
// the firmware flag that a reboot with bootloader.TrybootRebootArg sets for the next
// start only.
type Tryboot struct {
	Committed bootchain.Slot
	Flag      bool
	Writes    int
}

// NewTryboot starts as a fresh image: slot A committed.
func NewTryboot() *Tryboot { return &Tryboot{Committed: bootchain.A} }

// Primary implements Bootloader.
func (f *Tryboot) Primary() (bootchain.Slot, error) { return f.Committed, nil }

// TryOnce implements Bootloader.
func (f *Tryboot) TryOnce(s bootchain.Slot) error {
	if s == f.Committed {
		return fmt.Errorf("slot %s is the committed one", s)
	}
	f.Writes++
	return nil
}

// MarkGood implements Bootloader.
func (f *Tryboot) MarkGood(s bootchain.Slot) error {
	if f.Committed != s {
		f.Writes++
		f.Committed = s
	}
	return nil
}

// MarkBad implements Bootloader.
func (f *Tryboot) MarkBad(s bootchain.Slot) error {
	if f.Committed == s {
		f.Writes++
		f.Committed = s.Other()
	}
	return nil
}

// Tried implements Bootloader.
func (f *Tryboot) Tried(bootchain.Slot) (bootchain.Evidence, error) { return bootchain.Unknown, nil }

// Reboot records the reboot argument, as the kernel hands it over.
func (f *Tryboot) Reboot(arg string) { f.Flag = arg == bootloader.TrybootRebootArg }

// PowerOn is what the firmware starts: the [tryboot] slot once after a
// flagged reboot, the committed slot otherwise.
func (f *Tryboot) PowerOn() bootchain.Slot {
	if f.Flag {
		f.Flag = false
		return f.Committed.Other()
	}
	return f.Committed
}
