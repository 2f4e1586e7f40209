// Package health holds the checks a trial boot must pass before it is
// committed: systemd units active (over D-Bus), HTTP probes and commands.
// Each check retries until it passes or the agent's deadline ends, and its
// error says why it last failed.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"golang.org/x/sys/unix"
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

// Stable is how long a unit must stay active, without a restart, to pass:
// a unit that crashes right after it starts (Restart=on-failure) is
// active for a moment on every attempt.
const Stable = 10 * time.Second

// Unit passes when a systemd unit is active and stays active, with no
// restart, for Stable.
type Unit struct {
	Unit   string
	Stable time.Duration // default Stable
	// Journal reads the unit's last lines of log for a failure's reason;
	// nil runs journalctl.
	Journal func(ctx context.Context, unit string, lines int) ([]string, error)
}

// LogLines is how many of a failing unit's last log lines its error
// carries (a container's own output is its unit's log), each cut to
// logLineMax bytes.
const (
	LogLines   = 5
	logLineMax = 200
)

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
	read := func(ctx context.Context) (unitState, error) {
		var us unitState
		p, err := conn.GetUnitPropertyContext(ctx, u.Unit, "ActiveState")
		if err != nil {
			return us, err
		}
		us.active = strings.Trim(p.Value.String(), `"`)
		if p, err := conn.GetServicePropertyContext(ctx, u.Unit, "NRestarts"); err == nil {
			us.restarts = p.Value.String()
		}
		if p, err := conn.GetUnitPropertyContext(ctx, u.Unit, "ActiveEnterTimestampMonotonic"); err == nil {
			us.since, _ = p.Value.Value().(uint64)
		}
		// systemd's monotonic timestamps are CLOCK_MONOTONIC in µs; read
		// after the activation's, so at >= since.
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			us.at = uint64(ts.Nano() / 1e3)
		}
		return us, nil
	}
	return u.check(ctx, read)
}

// check is Run on a reader of the unit's state: a failure names the
// unit's last log lines.
func (u Unit) check(ctx context.Context, read func(context.Context) (unitState, error)) error {
	stable := u.Stable
	if stable <= 0 {
		stable = Stable
	}
	err := stays(ctx, u.Unit, stable, read)
	if err == nil {
		return nil
	}
	journal := u.Journal
	if journal == nil {
		journal = journalTail
	}
	// The deadline has passed: the journal gets a few seconds of its own.
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	lines, jerr := journal(jctx, u.Unit, LogLines)
	var kept []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > logLineMax {
				l = strings.ToValidUTF8(l[:logLineMax], "") + "…"
			}
			kept = append(kept, l)
		}
	}
	if jerr != nil || len(kept) == 0 {
		return err
	}
	return fmt.Errorf("%w; its last log lines: %s", err, strings.Join(kept, " | "))
}

// journalTail is the unit's last lines of log in this boot.
func journalTail(ctx context.Context, unit string, lines int) ([]string, error) {
	out, err := exec.CommandContext(ctx, "journalctl", "-b", "-q", "--no-pager", "-o", "cat", "-u", unit, "-n", strconv.Itoa(lines)).Output()
	if err != nil {
		return nil, fmt.Errorf("journalctl -u %s: %w", unit, err)
	}
	return strings.Split(string(out), "\n"), nil
}

// stays passes when read reports the unit active twice, stable apart,
// with nothing changed between (no restart, no new activation).
func stays(ctx context.Context, unit string, stable time.Duration, read func(context.Context) (unitState, error)) error {
	return retry(ctx, func(ctx context.Context) error {
		first, err := read(ctx)
		if err != nil {
			return err
		}
		if first.active != "active" {
			return fmt.Errorf("%s is %s", unit, first.active)
		}
		if first.activeFor() >= stable {
			// Active since before its turn came (the checks run one
			// after another): a restart would have made a new activation.
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s was active but did not stay so for %s before the deadline", unit, stable)
		case <-time.After(stable):
		}
		then, err := read(ctx)
		if err != nil {
			return err
		}
		if !then.same(first) {
			return fmt.Errorf("%s did not stay active for %s (now %s, restarts %s → %s)", unit, stable, then.active, first.restarts, then.restarts)
		}
		return nil
	})
}

// unitState is what a unit check reads of a unit.
type unitState struct {
	active, restarts string
	since            uint64 // ActiveEnterTimestampMonotonic, µs (0: unknown)
	at               uint64 // CLOCK_MONOTONIC when read, µs (0: unknown)
}

// same: no restart and no new activation between the two reads.
func (s unitState) same(o unitState) bool {
	return s.active == o.active && s.restarts == o.restarts && s.since == o.since
}

// activeFor is how long the unit had been active when read (0 when either
// time is unknown).
func (s unitState) activeFor() time.Duration {
	if s.since == 0 || s.at <= s.since {
		return 0
	}
	return time.Duration(s.at-s.since) * time.Microsecond
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

// OutputLimit bounds what a health command's output adds to an error.
const OutputLimit = 4096

// Command passes when the program exits 0. Each run starts in a session
// of its own; when it returns, or at the deadline, the program and every
// process it started are killed, also those that left its session or
// were left behind by a parent that exited (see sweep.go).
type Command struct{ Argv []string }

// Name implements agent.Check.
func (c Command) Name() string { return "command " + strings.Join(c.Argv, " ") }

// Run implements agent.Check.
func (c Command) Run(ctx context.Context) error {
	return retry(ctx, c.once)
}

// once runs the command once, then sweeps what it started.
func (c Command) once(ctx context.Context) (err error) {
	release, err := holdReaper()
	if err != nil {
		return err
	}
	defer release()
	// The output goes to a pipe of ours, not one exec copies: Wait
	// returns when the program exits, whoever else holds the pipe, and
	// the sweep then closes it by killing them.
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer r.Close()
	out := &tail{max: OutputLimit}
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(out, r)
		close(copied)
	}()
	token := newToken()
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append(os.Environ(), EnvToken+"="+token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err == nil {
		err = cmd.Wait()
		left, serr := sweep("/proc", cmd.Process.Pid, token)
		if serr == nil && len(left) > 0 {
			serr = fmt.Errorf("processes %v it started could not be stopped", left)
		}
		err = errors.Join(err, serr)
	}
	// A holder of the pipe the sweep could not find (one that replaced
	// its environment and left the session) is not waited for.
	_ = r.SetReadDeadline(time.Now().Add(time.Second))
	<-copied
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	max     int
	b       []byte
	dropped bool
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
		t.dropped = true
	}
	return len(p), nil
}

func (t *tail) String() string {
	s := strings.ToValidUTF8(string(t.b), "?")
	if t.dropped {
		return "…" + s
	}
	return s
}
