package boottest

import (
	"testing"

	"github.com/pibake/pibake/bootchain"
)

const (
	A = bootchain.A
	B = bootchain.B
)

func TestTrialSucceeds(t *testing.T) {
	f := NewFake()
	if s := f.PowerOn(); s != A {
		t.Fatalf("fresh image boots %s", s)
	}
	f.MarkGood(A)
	f.TryOnce(B)
	if s := f.PowerOn(); s != B {
		t.Fatalf("trial boots %s, want b", s)
	}
	f.MarkGood(B)
	for i := 0; i < 5; i++ {
		if s := f.PowerOn(); s != B {
			t.Fatalf("boot %d after commit starts %s", i, s)
		}
		f.MarkGood(B)
	}
}

func TestTrialFallsBack(t *testing.T) {
	for name, after := range map[string]func(f *Fake){
		"never marked (kernel hangs)": func(f *Fake) {},
		"marked bad (health failed)":  func(f *Fake) { f.MarkBad(B) },
	} {
		f := NewFake()
		f.PowerOn()
		f.MarkGood(A)
		f.TryOnce(B)
		if s := f.PowerOn(); s != B {
			t.Fatalf("%s: trial boots %s", name, s)
		}
		after(f)
		for i := 0; i < 4; i++ {
			if s := f.PowerOn(); s != A {
				t.Fatalf("%s: boot %d after the trial starts %s, want a", name, i, s)
			}
			f.MarkGood(A)
		}
	}
}

func TestPrimaryWithoutMarking(t *testing.T) {
	// Without any marking, a slot is started MaxTries times, then the other.
	f := NewFake()
	var got []bootchain.Slot
	for i := 0; i < 4; i++ {
		got = append(got, f.PowerOn())
	}
	if got[0] != A || got[2] != A || got[3] != B {
		t.Errorf("boots %v, want a a a b", got)
	}
}
