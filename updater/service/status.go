package service

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/bootloader"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/device"
	"github.com/pibake/pibake/updater/state"
)

func Status(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Read only: an unreadable file is reported, not set aside (the
	// service does that when it next starts).
	var st state.State
	if data, err := os.ReadFile(StatePath); err == nil {
		if st, err = state.Parse(data); err != nil {
			return fmt.Errorf("updater state %s is unreadable (%v); the service sets it aside and starts afresh", StatePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("updater state: %w", err)
	}
	out := struct {
		Booted string      `json:"booted,omitempty"`
		Boot   string      `json:"boot_state,omitempty"`
		State  state.State `json:"state"`
	}{State: st}
	if dev, err := device.Detect(); err == nil {
		out.Booted = string(dev.Booted)
		if dir, err := dev.MountBootsel(); err == nil {
			// The configured chain: updater.yaml's bootloader, or the default.
			cfg, err := config.Load(config.ImagePath, config.OverridePath)
			if err != nil {
				out.Boot = fmt.Sprintf("unknown (%v)", err)
			} else if chain, err := bootchain.ParseChain(cfg.Bootloader); err == nil {
				out.Boot = bootloader.Describe(chain, dir)
			}
		}
	}
	if !*asJSON {
		// Reasons and versions come from servers and documents: no
		// terminal control sequence of theirs reaches the terminal.
		stdout = safeText{stdout}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(stdout, "booted slot: %s\nboot state: %s\n", out.Booted, out.Boot)
	if st.Committed != "" {
		fmt.Fprintf(stdout, "committed slot: %s\n", st.Committed)
	}
	if st.Degraded != "" {
		fmt.Fprintf(stdout, "degraded: %s\n", st.Degraded)
	}
	for _, ch := range slices.Sorted(maps.Keys(st.Serials)) {
		fmt.Fprintf(stdout, "channel %s: serial %d committed\n", ch, st.Serials[ch])
	}
	for _, s := range bootchain.Slots() {
		if r, ok := st.Slots[s.String()]; ok {
			fmt.Fprintf(stdout, "slot %s: %s %s (serial %d)\n", s, r.Image, r.Version, r.Serial)
		}
	}
	if st.Trial != nil {
		fmt.Fprintf(stdout, "trial pending: %s in slot %s since %s\n", st.Trial.Release.Version, st.Trial.Slot, st.Trial.Since.Format(time.RFC3339))
	}
	for _, v := range slices.Sorted(maps.Keys(st.Failed)) {
		f := st.Failed[v]
		fmt.Fprintf(stdout, "failed: %s at %s", v, f.Stage)
		if f.Check != "" {
			fmt.Fprintf(stdout, " (%s)", f.Check)
		}
		fmt.Fprintf(stdout, ": %s\n", f.Reason)
	}
	if m := st.LastInstall; m != nil {
		fmt.Fprintf(stdout, "last install: %s: downloaded %d bytes, reused %d from the running slot, of %d", m.Version, m.Downloaded, m.Reused, m.Full)
		if m.Seconds > 0 {
			fmt.Fprintf(stdout, ", in %.1f s", m.Seconds)
		}
		if m.PeakRSS > 0 {
			fmt.Fprintf(stdout, ", agent peak RSS %.1f MiB", float64(m.PeakRSS)/(1<<20))
		}
		fmt.Fprintln(stdout)
	}
	if st.LastError != "" {
		fmt.Fprintf(stdout, "last error: %s\n", st.LastError)
	}
	return nil
}

// safeText replaces control characters (C0 but newline and tab, DEL, C1)
// with '?': text a hostile server put into an error cannot move the
// cursor, clear the screen or retitle the terminal of whoever reads
// status.
type safeText struct{ w io.Writer }

func (s safeText) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, r := range string(p) {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	if _, err := io.WriteString(s.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
