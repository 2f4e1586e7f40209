package bootloader

// Fake is an in-memory U-Boot chain for tests: the same transitions as
// UBoot, plus PowerOn, which does what the boot script does.
type Fake struct {
	St State
	// Copy is the agent's copy of the state (AgentStateFile); Torn means
	// StateFile was torn by U-Boot's own write, so the script reads Copy.
	Copy State
	Torn bool
	// Writes counts state writes; FailAfter > 0 makes write number
	// FailAfter and later fail (a power cut: the write does not happen).
	Writes, FailAfter int
}

// NewFake starts from the state a fresh image has.
func NewFake() *Fake {
	st, _ := ParseState(nil)
	return &Fake{St: st, Copy: st.Clone()}
}

// ErrPowerCut is returned by writes after the cut.
var ErrPowerCut = errPowerCut{}

type errPowerCut struct{}

func (errPowerCut) Error() string { return "power cut" }

func (f *Fake) write(st State) error {
	f.Writes++
	if f.FailAfter > 0 && f.Writes >= f.FailAfter {
		return ErrPowerCut
	}
	f.St, f.Copy, f.Torn = st, st.Clone(), false
	return nil
}

// current is the state the agent and the script start from.
func (f *Fake) current() State {
	if f.Torn {
		return f.Copy
	}
	return f.St
}

// Primary implements Bootloader.
func (f *Fake) Primary() (Slot, error) { return f.current().Primary(), nil }

// TryOnce implements Bootloader.
func (f *Fake) TryOnce(s Slot) error { return f.write(f.current().TryOnce(s)) }

// MarkGood implements Bootloader.
func (f *Fake) MarkGood(s Slot) error { return f.write(f.current().MarkGood(s)) }

// MarkBad implements Bootloader.
func (f *Fake) MarkBad(s Slot) error { return f.write(f.current().MarkBad(s)) }

// Tried implements Bootloader.
func (f *Fake) Tried(s Slot) (Evidence, error) { return f.current().Tried(s), nil }

// PowerOn runs the boot script: it returns the slot that starts.
func (f *Fake) PowerOn() Slot {
	s, st := f.current().Boot()
	f.St, f.Torn = st, false
	return s
}

// PowerOnTorn is PowerOn with a power cut during the script's own write
// of StateFile: the slot starts, and StateFile is left unreadable.
func (f *Fake) PowerOnTorn() Slot {
	s, _ := f.current().Boot()
	f.Torn = true
	return s
}
