package e2e

import (
	"context"
	"os"
	"strings"

	"github.com/pibake/pibake/vm"
)

// runQEMU is vm.Run; PIBAKE_E2E_QEMU_EXTRA, if set, is added to every
// QEMU's arguments (split at spaces): for a diagnostic run (-trace, -D,
// -qmp, -gdb).
func runQEMU(ctx context.Context, opts vm.Options) error {
	if extra := os.Getenv("PIBAKE_E2E_QEMU_EXTRA"); extra != "" {
		opts.Extra = append(append([]string(nil), opts.Extra...), strings.Fields(extra)...)
	}
	return vm.Run(ctx, opts)
}
