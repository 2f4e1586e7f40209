package reporter

import (
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestReporterImportsNoBuilderCode: the publisher is linked into the
// device agent: no build-host code, no cgo (paho is pure Go).
func TestReporterImportsNoBuilderCode(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/pibake/pibake/firmware", "github.com/pibake/pibake/publish",
		"github.com/pibake/pibake/vm", "github.com/pibake/pibake/fleet", "go.podman.io/", "github.com/google/go-containerregistry")
}
