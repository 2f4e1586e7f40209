package bootloader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pibake/pibake/bootchain"
)

// TrybootRebootArg is what reboot(2) must carry for the firmware to start
// the [tryboot] partition once.
const TrybootRebootArg = "0 tryboot"

// ErrNoTrybootKernel means the running kernel cannot hand the tryboot flag
// to the firmware.
var ErrNoTrybootKernel = errors.New("the running kernel cannot pass the tryboot flag to the Pi firmware")

// CheckTrybootKernel refuses kernels that drop the reboot argument: only
// Raspberry Pi kernels (releases like 6.12.34+rpt-rpi-v8) hand the
// tryboot flag of TrybootRebootArg to the firmware; Debian's
// (6.12.48+deb13-arm64) ignores it, so a trial would never start.
func CheckTrybootKernel(release string) error {
	if strings.Contains(release, "+rpt") || strings.Contains(release, "-rpi-") {
		return nil
	}
	return fmt.Errorf("kernel %s: %w (only Raspberry Pi kernels do): build this image with bootloader: uboot", release, ErrNoTrybootKernel)
}

// Tryboot is the Pi firmware's own A/B: Dir/autoboot.txt names the
// committed slot; TryOnce points [tryboot] at the trial slot, and the
// reboot after it must carry TrybootRebootArg; any later start (a crash, a
// watchdog reset, a power cut) is a normal one and starts the committed
// slot again. There are no counters: the firmware's flag is one-shot.
type Tryboot struct{ Dir string }

func (t Tryboot) committed() (bootchain.Slot, error) {
	data, err := os.ReadFile(filepath.Join(t.Dir, bootchain.AutobootFile))
	if errors.Is(err, os.ErrNotExist) {
		return bootchain.A, nil // what the build writes
	}
	if err != nil {
		return "", fmt.Errorf("boot state: %w", err)
	}
	normal, _, enabled, err := bootchain.ParseAutoboot(data)
	if err != nil {
		return "", fmt.Errorf("boot state: %w", err)
	}
	if !enabled {
		return "", fmt.Errorf("boot state: %s lacks tryboot_a_b=1: %w", bootchain.AutobootFile, bootchain.ErrState)
	}
	if s, ok := bootchain.SlotBootingFrom(normal); ok {
		return s, nil
	}
	return "", fmt.Errorf("boot state: %s boots partition %d, not a slot: %w", bootchain.AutobootFile, normal, bootchain.ErrState)
}

func (t Tryboot) commit(s bootchain.Slot) error {
	return writeFile(t.Dir, bootchain.AutobootFile, bootchain.AutobootTxt(s))
}

// Primary implements Bootloader: the committed slot.
func (t Tryboot) Primary() (bootchain.Slot, error) { return t.committed() }

// TryOnce implements Bootloader. autoboot.txt always names the other slot
// in [tryboot]; it is rewritten in case it was changed by hand.
func (t Tryboot) TryOnce(s bootchain.Slot) error {
	c, err := t.committed()
	if err != nil {
		return err
	}
	if c == s {
		return fmt.Errorf("slot %s is the committed one: a trial needs the other slot", s)
	}
	return t.commit(c)
}

// MarkGood implements Bootloader.
func (t Tryboot) MarkGood(s bootchain.Slot) error {
	if c, err := t.committed(); err == nil && c == s {
		return nil // nothing to write: the FAT is left alone
	}
	return t.commit(s)
}

// MarkBad implements Bootloader: a bad committed slot gives way to the
// other; a bad trial slot needs nothing (the next start is a normal one).
func (t Tryboot) MarkBad(s bootchain.Slot) error {
	c, err := t.committed()
	if err != nil {
		return err
	}
	if c == s {
		return t.commit(s.Other())
	}
	return nil
}

// Tried implements Bootloader: the firmware's flag leaves no trace.
func (t Tryboot) Tried(bootchain.Slot) (bootchain.Evidence, error) { return bootchain.Unknown, nil }
