package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/pibake/pibake/vm"
)

// noNIC, in vm.Options.Extra, takes the guest's network device away
// (runQEMU): a device whose site network is down, or whose cable is out.
var noNIC = []string{"-nic", "none"}

// runQEMU is vm.Run, except that on virt an Extra of "-nic none" (noNIC)
// removes the user-mode NIC vm gives every virt guest: QEMU's -nic none
// only turns off the default NIC, not one already named. The Pi machines
// never get one.
//
// PIBAKE_E2E_QEMU_EXTRA, if set, is added to every QEMU's arguments (split
// at spaces): for a diagnostic run (-trace, -D, -qmp, -gdb).
func runQEMU(ctx context.Context, opts vm.Options) error {
	if extra := os.Getenv("PIBAKE_E2E_QEMU_EXTRA"); extra != "" {
		opts.Extra = append(append([]string(nil), opts.Extra...), strings.Fields(extra)...)
	}
	if !hasPair(opts.Extra, noNIC) {
		return vm.Run(ctx, opts)
	}
	cmd, cleanup, err := vm.Command(ctx, opts)
	if err != nil {
		return err
	}
	defer cleanup()
	args := []string{cmd.Args[0]}
	for i := 1; i < len(cmd.Args); i++ {
		if cmd.Args[i] == "-nic" && i+1 < len(cmd.Args) && cmd.Args[i+1] != "none" {
			i++
			continue
		}
		args = append(args, cmd.Args[i])
	}
	cmd.Args = args
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("qemu: %w (%s)", err, strings.Join(cmd.Args, " "))
	}
	return ctx.Err()
}

func hasPair(args, pair []string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == pair[0] && args[i+1] == pair[1] {
			return true
		}
	}
	return false
}
