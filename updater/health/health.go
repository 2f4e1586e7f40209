// Package health holds the checks a trial boot must pass before it is
// committed: systemd units active (over D-Bus), HTTP probes and commands.
// Each check retries until it passes or the agent's deadline ends, and its
// error says why it last failed.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// every is how often a failing check is tried again.
const every = 2 * time.Second

func retry(ctx context.Context, f func(context.Context) error) error {
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(every):
		}
	}
}

// Unit passes when a systemd unit is active.
type Unit struct{ Unit string }

// Name implements agent.Check.
func (u Unit) Name() string { return "unit " + u.Unit }

// Run implements agent.Check.
func (u Unit) Run(ctx context.Context) error {
	// systemd's private socket needs no D-Bus daemon (minimal images have
	// none); the system bus is the fallback.
	conn, err := sddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		var err2 error
		if conn, err2 = sddbus.NewSystemConnectionContext(ctx); err2 != nil {
			return fmt.Errorf("connect to systemd: %w", errors.Join(err, err2))
		}
	}
	defer conn.Close()
	return retry(ctx, func(ctx context.Context) error {
		p, err := conn.GetUnitPropertyContext(ctx, u.Unit, "ActiveState")
		if err != nil {
			return err
		}
		state := strings.Trim(p.Value.String(), `"`)
		if state != "active" {
			return fmt.Errorf("%s is %s", u.Unit, state)
		}
		return nil
	})
}

// HTTP passes when a GET answers with the status wanted (default 200).
type HTTP struct {
	URL    string
	Status int
	Client *http.Client
}

// Name implements agent.Check.
func (h HTTP) Name() string { return "http " + h.URL }

// Run implements agent.Check.
func (h HTTP) Run(ctx context.Context) error {
	want := h.Status
	if want == 0 {
		want = http.StatusOK
	}
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	return retry(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("status %d, want %d", resp.StatusCode, want)
		}
		return nil
	})
}

// Command passes when the program exits 0.
type Command struct{ Argv []string }

// Name implements agent.Check.
func (c Command) Name() string { return "command " + strings.Join(c.Argv, " ") }

// Run implements agent.Check.
func (c Command) Run(ctx context.Context) error {
	return retry(ctx, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}
