package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/lock"
)

// InstallFrom installs from a URL, a repository folder or a bundle file
// made by pibake bundle. A bundle that does not carry the configured
// channel but exactly one other is read from that one: it is signed and
// checked all the same. The install is a one-off: it runs on its own copy
// of a, so the agent it was given (the service's, when the service runs)
// keeps its channel and source.
func InstallFrom(ctx context.Context, a *agent.Agent, from string, log *slog.Logger) error {
	once := *a
	if st, err := os.Stat(from); err == nil && st.Mode().IsRegular() {
		b, err := install.OpenBundle(from)
		if err != nil {
			return err
		}
		chans := b.Channels()
		if !slices.Contains(chans, once.Channel) {
			if len(chans) != 1 {
				return fmt.Errorf("%s: %w %q; it has %s", from, install.ErrNoChannel, once.Channel, strings.Join(chans, ", "))
			}
			log.Info("the bundle carries another channel; installing from it", "configured", once.Channel, "bundle", chans[0])
			once.Channel = chans[0]
		}
		return once.InstallFrom(ctx, b)
	}
	return once.InstallFrom(ctx, Source(from))
}

// Check fetches and verifies the channel document and says on w what it
// offers; it installs nothing.
func Check(ctx context.Context, a *agent.Agent, w io.Writer) error {
	st, err := a.Load()
	if err != nil {
		return err
	}
	d, err := a.Fetch(ctx, st)
	if errors.Is(err, channel.ErrReplay) {
		fmt.Fprintln(w, "up to date")
		return nil
	}
	if err != nil {
		return err
	}
	// The image's name and version come from the server's document: no
	// control sequence of theirs reaches the terminal.
	fmt.Fprintf(safeText{w}, "available: %s %s (serial %d, expires %s)\n", d.Image, d.Version, d.Serial, d.Expires.Format(time.RFC3339))
	return nil
}

// MarkGood keeps the running slot.
func MarkGood(a *agent.Agent) error { return a.Boot.MarkGood(a.Booted) }

// AsWriter runs f holding the updater's lock. One writer at a time: the
// service waits for its turn, but a command that writes (install,
// mark-good, rollback) is refused with lock.ErrBusy while another writer
// is at work.
func AsWriter(f func() error) error {
	l, err := lock.Take(lock.Path, false)
	if err != nil {
		return err
	}
	defer l.Unlock()
	return f()
}
