package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestVerbHelp: every verb prints its usage to stdout and does nothing
// else (no agent is made: this machine is no device).
func TestVerbHelp(t *testing.T) {
	for name := range verbs {
		if !strings.Contains(usage, "pibake-updater "+name) {
			t.Errorf("the usage does not list %s", name)
		}
		for _, h := range []string{"--help", "-h"} {
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{name, h}, &out, &errb)
			if err != nil || !strings.HasPrefix(out.String(), "Usage: pibake-updater "+name) || errb.Len() != 0 {
				t.Errorf("pibake-updater %s %s: %v, stdout %q, stderr %q", name, h, err, out.String(), errb.String())
			}
		}
	}
	if len(verbs) != 7 {
		t.Errorf("%d verbs", len(verbs))
	}
}
