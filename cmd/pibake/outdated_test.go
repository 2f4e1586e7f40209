package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pibake/pibake/builder"
	"github.com/pibake/pibake/builder/debian"
)

// TestOutdatedExit: something outdated ends with status 3 (what main
// exits with), misuse with 2; the table marks security fixes.
func TestOutdatedExit(t *testing.T) {
	var coded interface{ ExitCode() int }
	err := fmt.Errorf("wrapped: %w", errOutdated{n: 2, security: 1, definition: "images/demo.yaml"})
	if !errors.As(err, &coded) || coded.ExitCode() != 3 || !strings.Contains(err.Error(), "pibake lock images/demo.yaml") {
		t.Errorf("outdated: %v", err)
	}
	var out, errw bytes.Buffer
	if err := run(context.Background(), []string{"outdated"}, &out, &errw); exitCode(err) != 2 {
		t.Errorf("no definition: %v", err)
	}
	r := &builder.OutdatedReport{Lock: "images/demo.lock", Archives: []string{"trixie", "trixie-security"}, Packages: 186, Security: 1, Updates: []debian.Update{
		{Name: "linux-image-arm64", Role: "root", Locked: "6.12.117-1", Newest: "6.12.118-1", NewestArchive: "trixie-security", Security: true},
	}}
	out.Reset()
	printOutdated(&out, r)
	if s := out.String(); !strings.Contains(s, "1 of 186 locked packages") || !strings.Contains(s, "6.12.118-1") || !strings.Contains(s, "security fix") {
		t.Errorf("table:\n%s", s)
	}
}
