// Command pibake-updater is the on-device A/B update agent; see package
// agent for what it does and docs/updates.md for how to use it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pibake-updater:", err)
		os.Exit(1)
	}
}
