package imager_test

import (
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestImportsNoBuilder: reading a build's manifest.json links neither the
// builder nor the container libraries it uses.
func TestImportsNoBuilder(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/google/go-containerregistry")
}
