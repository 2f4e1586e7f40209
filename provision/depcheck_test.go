package provision

import (
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestImportsNoBuilderCode: the device agent and the host CLI both import
// this package; it stays free of build-host code and cgo.
func TestImportsNoBuilderCode(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/pibake/pibake/firmware", "github.com/pibake/pibake/publish",
		"github.com/pibake/pibake/vm", "go.podman.io/", "github.com/google/go-containerregistry")
}
