// Package gocompile is pibake's one recipe for compiling a Go program
// for the devices (linux/arm64, static): the device programs and the
// containers built from Go source use it alike, so that a binary depends
// only on the source and the Go version, never on the path, the time or
// the version control state.
package gocompile

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Arm64 runs gobin (the go command) in dir to build the package pkg into
// out, with goflags as GOFLAGS ("" for none).
func Arm64(ctx context.Context, gobin, dir, pkg, out, goflags string) error {
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOFLAGS="+goflags)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
