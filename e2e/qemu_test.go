package e2e

import (
	"context"
	"os"
	"strings"

	"github.com/pibake/pibake/vm"
)

// guestNice is every story's QEMU niceness (vm.Options.Nice): the guests
// come before whatever builds beside them. Two cold-cache runs of make
// test (CI's of 871974c, and one of 72b1ce2 with the other packages at
// nice 10 instead) each reset TestUpdate's guest by its watchdog in v2's
// trial boot: systemd, which opens the watchdog 6 to 19 s after the init
// hands it over on every other boot of those runs, had not in 120 s;
// CI's guest kernel reported its vCPU unscheduled for 27 s at a time.
// The cold bootstraps and image builds beside it (the other packages',
// and the stories' own in the other lane) had the guests' priority.
// Niceness of the other packages alone did not do: the stories' own
// builds stayed at the guests' priority, and the packages' run at nice 10
// took 3,804 s for the builder instead of 874 s, past the stories' end.
const guestNice = -5

// runQEMU is vm.Run at guestNice; PIBAKE_E2E_QEMU_EXTRA, if set, is added
// to every QEMU's arguments (split at spaces): for a diagnostic run
// (-trace, -D, -qmp, -gdb).
func runQEMU(ctx context.Context, opts vm.Options) error {
	if opts.Nice == 0 {
		opts.Nice = guestNice
	}
	if extra := os.Getenv("PIBAKE_E2E_QEMU_EXTRA"); extra != "" {
		opts.Extra = append(append([]string(nil), opts.Extra...), strings.Fields(extra)...)
	}
	return vm.Run(ctx, opts)
}
