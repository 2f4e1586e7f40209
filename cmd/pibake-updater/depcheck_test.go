package main

import (
	"testing"

	"github.com/pibake/pibake/internal/depcheck"
)

// TestAgentImportsNoBuilderCode keeps the device agent free of build-host
// code, container libraries and cgo.
func TestAgentImportsNoBuilderCode(t *testing.T) {
	depcheck.Check(t, "github.com/pibake/pibake/builder", "github.com/pibake/pibake/firmware", "github.com/pibake/pibake/publish",
		"github.com/pibake/pibake/vm", "go.podman.io/", "github.com/google/go-containerregistry")
}
