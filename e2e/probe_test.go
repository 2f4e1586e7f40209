package e2e

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pibake/pibake/vm"
)

// probeAfter is how long a guest may print nothing before the story asks
// QEMU what its CPUs are doing and presses Enter on the console (once per
// silence). PIBAKE_E2E_PROBE (a Go duration) changes it.
//
// Why: QEMU's Pi machines were seen to go silent at 0 % host CPU (every
// virtual CPU waiting for an interrupt) at the moment the container's
// network comes up (docs/boot.md, "A silent raspi3b"). The probe prints
// QEMU's view of the CPUs into the console log (halted or not, where
// each one is), which says whether the emulator lost an interrupt or the
// guest loops; the key press raises the UART's receive interrupt, which
// wakes a CPU that waits for an interrupt and does nothing to one that
// loops. A guest that goes on after it is logged as woken by the probe,
// so a story that passes thanks to it says so.
var probeAfter = envDuration("PIBAKE_E2E_PROBE", 3*time.Minute)

// prober watches one run's console for a silence and probes it.
type prober struct {
	t      *testing.T
	name   string
	in     io.Writer // QEMU's stdin: the console mux
	cycle  int       // Ctrl-A c presses from the monitor back to the console
	probes atomic.Int32
	pid    atomic.Int64 // QEMU's, once it runs (hostview_test.go)
	// mute is until when (UnixNano) lines are QEMU's monitor answering the
	// probe, not the guest: they do not count as progress.
	mute atomic.Int64
}

// newProber prepares the probe for the machine image boots on; nil when
// the machine has no console mux the probe knows.
func newProber(t *testing.T, name, image string, in io.Writer) *prober {
	tg, err := vm.ReadTarget(image)
	if err != nil {
		return nil
	}
	p := &prober{t: t, name: name, in: in}
	switch tg.Board.QEMUMachine {
	case "virt":
		p.cycle = 1 // -nographic: serial0, monitor
	default:
		p.cycle = 2 // vm.piArgs: serial0, serial1 (the console), monitor
	}
	return p
}

// progress says whether a console line arriving now is the guest's.
func (p *prober) progress() bool {
	return p == nil || time.Now().UnixNano() > p.mute.Load()
}

// silent is called by the quiet watcher with the length of a silence.
func (p *prober) silent(d time.Duration, lastProbe *time.Time) {
	if p == nil || d < probeAfter || (!lastProbe.IsZero() && time.Since(*lastProbe) < probeAfter) {
		return
	}
	*lastProbe = time.Now()
	n := p.probes.Add(1)
	p.mute.Store(time.Now().Add(5 * time.Second).UnixNano())
	p.t.Logf("%s: the guest printed nothing for %s: probe %d asks QEMU for its CPUs' state and presses Enter on the console (see the console log)", p.name, d.Round(time.Second), n)
	// The host's view first: the monitor's questions stop the vCPUs for
	// a moment, which would show in their CPU time.
	if pid := int(p.pid.Load()); pid != 0 {
		if v, err := threadView(pid, time.Second); err != nil {
			p.t.Logf("%s: probe %d: QEMU's threads: %v", p.name, n, err)
		} else {
			p.t.Logf("%s: probe %d: %s", p.name, n, v)
		}
	}
	if _, err := io.WriteString(p.in, probeSequence(p.cycle)); err != nil {
		p.t.Logf("%s: probe: %v", p.name, err)
	}
}

// started is vm.Options.Started: it learns QEMU's process ID.
func (p *prober) started(pid int) {
	if p != nil {
		p.pid.Store(int64(pid))
	}
}

// probeSequence is what the probe types: Ctrl-A c to QEMU's monitor, two
// questions, Ctrl-A c until the console has the focus again, Enter.
func probeSequence(cycle int) string {
	return "\x01c" + "info cpus\n" + "info registers -a\n" + strings.Repeat("\x01c", cycle) + "\r"
}

// report logs whether the run went on after a probe.
func (p *prober) report(stopped bool) {
	if p == nil || p.probes.Load() == 0 {
		return
	}
	if stopped {
		p.t.Logf("%s: WOKEN BY THE PROBE: the guest went on after %d probe(s) of a silence (an interrupt the emulator lost, docs/boot.md)", p.name, p.probes.Load())
		woken.Lock()
		woken.names = append(woken.names, p.name)
		woken.Unlock()
	}
}

// woken lists the runs a probe woke, for the summary of the stories.
var woken struct {
	sync.Mutex
	names []string
}

// wokenSummary is the summary's line about them, or "".
func wokenSummary() string {
	woken.Lock()
	defer woken.Unlock()
	if len(woken.names) == 0 {
		return ""
	}
	return fmt.Sprintf("guests woken by a probe after a silence (docs/boot.md): %s\n", strings.Join(woken.names, ", "))
}
