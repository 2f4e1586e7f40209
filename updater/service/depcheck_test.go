package service

import (
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestServiceImportsNoBuilderCode: this package is linked into the device
// agent, so it keeps to the agent's guard (cmd/pibake-updater's depcheck
// test): no build-host code, no container libraries, no cgo.
func TestServiceImportsNoBuilderCode(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/pibake/pibake/firmware", "github.com/pibake/pibake/publish",
		"github.com/pibake/pibake/vm", "go.podman.io/", "github.com/google/go-containerregistry")
}
