package provision

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestInterruptedKeepsFiles: a provisioning the service manager stops
// before it applied anything (its start timeout on a slow first boot,
// a shutdown) refused nothing: the files stay on bootsel for the next
// boot, and no error file says they were wrong. Found in CI: on a loaded
// machine the emulated Pi 4 reached the unit's 90 s timeout before the
// agent had read the file, and the file was erased unapplied, so the
// device would have lost its Wi-Fi and keys for good.
func TestInterruptedKeepsFiles(t *testing.T) {
	boot, root := t.TempDir(), target(t)
	body := []byte("hostname: box-1\n")
	if err := os.WriteFile(filepath.Join(boot, FileName), body, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cause := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"stopped", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), -1)
		}},
	} {
		ctx, cancel := cause.ctx()
		out, err := Run(ctx, boot, root, nil)
		cancel()
		if !errors.Is(err, ErrInterrupted) {
			t.Errorf("%s: Run's error %v, want ErrInterrupted", cause.name, err)
		}
		if out.Applied {
			t.Errorf("%s: applied although interrupted", cause.name)
		}
		if got, err := os.ReadFile(filepath.Join(boot, FileName)); err != nil || string(got) != string(body) {
			t.Errorf("%s: the provisioning file after an interrupted run: %q, %v; want it kept as it was", cause.name, got, err)
		}
		if _, err := os.Stat(filepath.Join(boot, ErrorFile)); err == nil {
			t.Errorf("%s: %s left on bootsel for files nothing was wrong with", cause.name, ErrorFile)
		}
		if got := read(t, root, HostnamePath); got != "demo\n" {
			t.Errorf("%s: the host name is %q although interrupted, want the image's", cause.name, got)
		}
	}
	// The next boot, not interrupted, applies and erases them.
	out, err := Run(context.Background(), boot, root, nil)
	if err != nil || !out.Applied {
		t.Fatalf("the next boot: %+v %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(boot, FileName)); err == nil {
		t.Errorf("the next boot applied the file and left it on bootsel")
	}
}
