package main

import (
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestDeviceCodeImportsNoBuilder keeps the initramfs init small and free
// of build-host code: it runs on the device as PID 1.
func TestDeviceCodeImportsNoBuilder(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/pibake/pibake/firmware", "github.com/pibake/pibake/vm", "github.com/pibake/pibake/publish")
}
