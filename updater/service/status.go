package service

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/internal/atomicfile"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
)

// Status is what pibake-updater status reads: the agent's state file, the
// configured boot chain and the device's boot state. It reads only: an
// unreadable state file is reported, not set aside (the service does that
// when it next starts), and bootsel is neither mounted nor written.
// DeviceStatus gives the device's own sources; tests give fakes.
type Status struct {
	StatePath string
	// DownloadPath is where the service keeps the download in progress
	// ("" or no file: none).
	DownloadPath string
	// Config is the configuration, for the boot chain it names.
	Config func() (config.Config, error)
	// Device finds the running system; an error leaves the booted slot
	// and the boot state out.
	Device func() (Device, error)
}

// Device is the running system as status sees it.
type Device struct {
	Booted bootchain.Slot
	// Mounted is where bootsel is mounted already (by the service), ""
	// if it is not: the boot state is read through that mount.
	Mounted string
	// Bootsel is bootsel's FAT filesystem, a partition or an image of
	// one, opened read-only when it is not mounted; "" if not found.
	Bootsel string
}

// DeviceStatus reads the device's own files: StatePath, updater.yaml with
// its override, /proc/cmdline and bootsel.
func DeviceStatus() Status {
	return Status{
		StatePath:    StatePath,
		DownloadPath: DownloadPath,
		Config:       func() (config.Config, error) { return config.Load(config.ImagePath, config.OverridePath) },
		Device:       runningDevice,
	}
}

// report is status's output; its JSON is that of status --json.
type report struct {
	Booted string `json:"booted,omitempty"`
	Boot   string `json:"boot_state,omitempty"`
	// Trust says whether State was checked against the device key:
	// "authenticated", "not authenticated (...)", or "UNTRUSTED (...)",
	// when State is left empty.
	Trust    string           `json:"state_trust"`
	State    state.State      `json:"state"`
	Download *install.Reading `json:"download,omitempty"`
}

// Print writes what each slot holds, the committed slot, the download in
// progress, a pending trial, a fallback (degraded), failed releases and
// the last result to w: as text, or as JSON.
func (s Status) Print(w io.Writer, asJSON bool) error {
	r, err := s.read()
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	// Reasons and versions come from servers and documents: no terminal
	// control sequence of theirs reaches the terminal.
	printText(safeText{w}, r)
	return nil
}

func (s Status) read() (report, error) {
	var r report
	dev, devErr := s.Device()
	data, err := os.ReadFile(s.StatePath)
	switch {
	case err == nil:
		if r.State, r.Trust, err = s.check(data, dev, devErr); err != nil {
			return r, err
		}
	case errors.Is(err, os.ErrNotExist):
		r.Trust = "no state file"
	default:
		return r, fmt.Errorf("updater state: %w", err)
	}
	r.Download = readDownload(s.DownloadPath)
	if devErr != nil {
		return r, nil
	}
	r.Booted = string(dev.Booted)
	if dev.Mounted == "" && dev.Bootsel == "" {
		return r, nil
	}
	// The configured chain: updater.yaml's bootloader, or the default.
	cfg, err := s.Config()
	if err != nil {
		r.Boot = fmt.Sprintf("unknown (%v)", err)
	} else if chain, err := bootchain.ParseChain(cfg.Bootloader); err == nil {
		r.Boot = dev.bootState(chain)
	}
	return r, nil
}

// check reads the state file's bytes as the agent would trust them: under
// the device key on bootsel. A state whose MAC fails is not shown (the
// agent sets it aside and starts afresh), only said to be untrusted.
func (s Status) check(data []byte, dev Device, devErr error) (state.State, string, error) {
	key, keyErr := []byte(nil), devErr
	if devErr == nil {
		key, keyErr = dev.readBootsel(state.KeepDir + "/state.key")
	}
	if keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist) {
		st, err := state.Parse(data)
		if err != nil {
			return st, "", fmt.Errorf("updater state %s is unreadable (%v); the service sets it aside and starts afresh", s.StatePath, err)
		}
		return st, fmt.Sprintf("not authenticated (the device key on bootsel cannot be read: %v)", keyErr), nil
	}
	st, authenticated, err := state.Check(data, key)
	switch {
	case errors.Is(err, state.ErrUntrusted):
		return state.State{}, fmt.Sprintf("UNTRUSTED (%s: %v): its content is not shown; the service sets it aside and starts afresh from what bootsel keeps", s.StatePath, err), nil
	case err != nil:
		return st, "", fmt.Errorf("updater state %s is unreadable (%v); the service sets it aside and starts afresh", s.StatePath, err)
	case !authenticated:
		return st, "not authenticated (this device has no key yet: the agent makes one when it runs as the committed slot)", nil
	}
	return st, "authenticated", nil
}

func printText(w io.Writer, r report) {
	st := r.State
	fmt.Fprintf(w, "booted slot: %s\nboot state: %s\n", r.Booted, r.Boot)
	if st.Committed != "" {
		fmt.Fprintf(w, "committed slot: %s\n", st.Committed)
	}
	if st.Degraded != "" {
		fmt.Fprintf(w, "degraded: %s\n", st.Degraded)
	}
	for _, ch := range slices.Sorted(maps.Keys(st.Serials)) {
		fmt.Fprintf(w, "channel %s: serial %d committed\n", ch, st.Serials[ch])
	}
	for _, s := range bootchain.Slots() {
		if r, ok := st.Slots[s.String()]; ok {
			fmt.Fprintf(w, "slot %s: %s %s (serial %d)\n", s, r.Image, r.Version, r.Serial)
		}
	}
	if d := r.Download; d != nil {
		fmt.Fprintf(w, "downloading: %s, %s", d.Name, mib(d.Fetched))
		if d.Size > 0 {
			fmt.Fprintf(w, " (of %s)", mib(d.Size))
		}
		fmt.Fprintf(w, " at %.1f KiB/s since %s (as of %s)\n", d.Rate()/1024, d.Since.Format(time.RFC3339), d.At.Format(time.RFC3339))
	}
	if wt := st.Waiting; wt != nil {
		fmt.Fprintf(w, "installed %s %s in slot %s, ", wt.Release.Image, wt.Release.Version, wt.Slot)
		switch {
		case wt.Why == "outside the maintenance window" && !wt.Next.IsZero():
			fmt.Fprintf(w, "waiting for the window (next: %s)\n", wt.Next.Format(time.RFC3339))
		case wt.Why != "":
			fmt.Fprintf(w, "waiting: %s", wt.Why)
			if !wt.Inhibited.IsZero() {
				fmt.Fprintf(w, " (since %s)", wt.Inhibited.Format(time.RFC3339))
			}
			fmt.Fprintln(w)
		default:
			fmt.Fprintln(w, "applying it at the next poll")
		}
	}
	if st.Trial != nil {
		fmt.Fprintf(w, "trial pending: %s in slot %s since %s\n", st.Trial.Release.Version, st.Trial.Slot, st.Trial.Since.Format(time.RFC3339))
	}
	for _, v := range slices.Sorted(maps.Keys(st.Failed)) {
		f := st.Failed[v]
		fmt.Fprintf(w, "failed: %s at %s", v, f.Stage)
		if f.Check != "" {
			fmt.Fprintf(w, " (%s)", f.Check)
		}
		fmt.Fprintf(w, ": %s\n", f.Reason)
	}
	if m := st.LastInstall; m != nil {
		fmt.Fprintf(w, "last install: %s: downloaded %d bytes, reused %d from the running slot, of %d", m.Version, m.Downloaded, m.Reused, m.Full)
		if m.Seconds > 0 {
			fmt.Fprintf(w, ", in %.1f s", m.Seconds)
		}
		if m.PeakRSS > 0 {
			fmt.Fprintf(w, ", agent peak RSS %.1f MiB", float64(m.PeakRSS)/(1<<20))
		}
		fmt.Fprintln(w)
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "last error: %s\n", st.LastError)
	}
	fmt.Fprintf(w, "state: %s\n", r.Trust)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// DownloadPath is where the service keeps the download in progress for
// status: in /run, so it never outlives the boot and costs the card no
// writes.
const DownloadPath = "/run/pibake/download.json"

// liveDownload is the service's side of it: the agent's readings of the
// download in progress (install.Reading), written at most once per
// every, and removed when the step that downloads ends.
type liveDownload struct {
	path  string
	every time.Duration
	last  time.Time
}

func (l *liveDownload) report(r install.Reading) {
	if !l.last.IsZero() && r.At.Sub(l.last) < l.every {
		return
	}
	l.last = r.At
	data, err := json.Marshal(r)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(l.path), 0o755)
	}
	if err == nil {
		_ = atomicfile.Write(l.path, data, 0o644)
	}
}

func (l *liveDownload) clear() {
	_ = os.Remove(l.path)
	l.last = time.Time{}
}

// readDownload is the download the service last reported, nil if none.
func readDownload(path string) *install.Reading {
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var r install.Reading
	if json.Unmarshal(data, &r) != nil {
		return nil
	}
	return &r
}

// safeText replaces with '?' control characters (C0 but newline and tab,
// DEL, C1), format characters (Unicode Cf: the bidirectional embeddings,
// overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks
// U+200E, U+200F and U+061C, zero-width and invisible characters),
// the line and paragraph separators and invalid UTF-8: text a hostile
// server put into an error cannot move the cursor, clear the screen or
// retitle the terminal of whoever reads status, nor show itself reordered
// or hidden.
type safeText struct{ w io.Writer }

func (s safeText) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, r := range string(p) {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || r == utf8.RuneError:
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
