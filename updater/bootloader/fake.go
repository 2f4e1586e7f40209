package bootloader

// Fake is an in-memory U-Boot chain for tests: the same transitions as
// UBoot, plus PowerOn, which does what the boot script does.
type Fake struct {
	St State
	// Writes counts state writes; FailAfter > 0 makes write number
	// FailAfter and later fail (a power cut: the write does not happen).
	Writes, FailAfter int
}

// NewFake starts from the state a fresh image has.
func NewFake() *Fake {
	st, _ := ParseState(nil)
	return &Fake{St: st}
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
	f.St = st
	return nil
}

// Primary implements Bootloader.
func (f *Fake) Primary() (Slot, error) { return f.St.Primary(), nil }

// TryOnce implements Bootloader.
func (f *Fake) TryOnce(s Slot) error { return f.write(f.St.tryOnce(s)) }

// MarkGood implements Bootloader.
func (f *Fake) MarkGood(s Slot) error { return f.write(f.St.markGood(s)) }

// MarkBad implements Bootloader.
func (f *Fake) MarkBad(s Slot) error { return f.write(f.St.markBad(s)) }

// Tried implements Bootloader.
func (f *Fake) Tried(s Slot) (Evidence, error) { return f.St.tried(s), nil }

// PowerOn runs the boot script: it returns the slot that starts.
func (f *Fake) PowerOn() Slot {
	s, st := f.St.boot()
	f.St = st
	return s
}
