package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The power-cut campaign's story, cut into legs. A leg starts from a disk
// state the campaign keeps (a checkpoint: a copy of the card at a clean
// moment) and ends at the release's verdict, powered off cleanly. Each
// cut is made in the first QEMU run of one leg, in one of its phases; the
// device is then started again on the same card until it settles.
//
//	C0  the card as flashed (v1), with a provisioning file on bootsel
//	    first  first boot: data partition grown and created, provisioning;
//	           v1 settles in slot a                                    → C1
//	    grow   C1 copied to a bigger card: the data filesystem grows
//	    v2     v2 (good) pulled into slot b, armed, its trial boot, health
//	           checks and commit (→ C2a at the reboot into the trial)    → C2
//	    v2t    the same from C2a                                        → C2
//	    v3     v3 (its health check cannot pass) pulled into slot a, armed,
//	           its trial, the failed check, the rollback to v2 (→ C3a)
//	    v3t    the same from C3a

// phase is a stretch of a leg, from the first console line that holds
// marker (after the previous phase began) to the next phase's.
type phase struct {
	name   string
	marker string
	// window, if not 0, is how long after its marker the phase is aimed
	// at, whatever the next marker says (commit: the writes that follow
	// the agent's line).
	window time.Duration
}

// Phase names. "boot" and "settled" are never aimed at: a cut that lands
// there is recorded as such.
const (
	phBoot        = "boot"
	phDataCreate  = "data-create"  // first boot: partition grown, ext4 created (pibake-init)
	phProvision   = "provisioning" // pibake-provision.service
	phDataGrow    = "data-grow"    // a bigger card: partition and filesystem grown (resize2fs)
	phDownload    = "download"     // the agent starts installing: document, indexes, first artifact (boot)
	phWrite       = "write"        // the root artifact written into the other slot (or resumed)
	phArm         = "arm"          // trial recorded, boot state written, shutdown for the reboot
	phTrialUBoot  = "trial-uboot"  // U-Boot's boot script: state read, tries counted down, fatwrite
	phTrialBoot   = "trial-boot"   // the trial's kernel, init and systemd until the agent runs
	phHealth      = "health"       // the agent's health checks of the trial
	phCommit      = "commit"       // the agent's commit: boot state and its state file
	phRollback    = "rollback"     // a failed trial: recorded, reboot, the old slot settles again
	phSettled     = "settled"      // the verdict was on the console
	ubootBanner   = "U-Boot 20"
	initLoaded    = "pibake-init: loaded"
	initSwitching = "pibake-init: switching to"
)

// leg is one part of the story; see above.
type leg struct {
	name     string
	family   string   // the legs that share a story (v2, v2t) share the phases' lengths
	aims     []string // the phases the campaign cuts in
	from, to string   // checkpoints: where it starts, what its end state is ("" none)
	mid      string   // checkpoint taken at the clean reboot into the trial ("" none)
	repo     string   // the release the server offers ("" none)
	grow     int64    // bytes added to the card before the leg
	phases   []phase
	verdict  func(soakStatus) error // nil once the device settled on the leg's verdict
	version  string                 // the release the booted slot must hold at the end
	slot     string                 // and the slot
}

// phase returns the leg's phase of that name.
func (l *leg) phase(name string) phase {
	for _, p := range l.phases {
		if p.name == name {
			return p
		}
	}
	return phase{}
}

// Checkpoints.
const (
	cpFlashed = "C0"
	cpV1      = "C1"
	cpV2Armed = "C2a"
	cpV2      = "C2"
	cpV3Armed = "C3a"
)

func updatePhases(last phase) []phase {
	return []phase{
		{name: phBoot, marker: ubootBanner},
		{name: phDownload, marker: "msg=installing"},
		// The boot artifact is written first; once it is done (or, after
		// a cut, verified again) the root is written.
		{name: phWrite, marker: `written and verified" artifact=boot`},
		{name: phArm, marker: "msg=installed"},
		{name: phTrialUBoot, marker: "with script"},
		{name: phTrialBoot, marker: "pibake: booting slot"},
		{name: phHealth, marker: "Started pibake-updater.service"},
		last,
	}
}

// retryPhases are a leg's phases in the boot after a cut in its trial:
// the boot of the old slot (its console shows the same U-Boot and script
// lines as a trial's), until the agent arms the trial again; then the
// trial's. A trial that boots again at once (the cut came before U-Boot
// spent its try) is not followed: a cut aimed at it is missed.
func retryPhases(l *leg) []phase {
	return append([]phase{{name: phBoot, marker: ubootBanner}, {name: phBoot, marker: "rebooting into the trial"}}, trialPhases(l.phases[len(l.phases)-1])...)
}

// trialPhases are a leg's phases from the reboot into its trial on.
func trialPhases(last phase) []phase { return updatePhases(last)[4:] }

func soakLegs() []*leg {
	commit := phase{name: phCommit, marker: "msg=committed", window: 2 * time.Second}
	rollback := phase{name: phRollback, marker: `msg="trial failed"`}
	v2 := func(s soakStatus) error { return s.settled("2.0.0", "b", "") }
	v3 := func(s soakStatus) error { return s.settled("2.0.0", "b", "3.0.0") }
	v1 := func(s soakStatus) error { return s.settled("1.0.0", "a", "") }
	install := []string{phDownload, phWrite, phArm}
	return []*leg{
		{name: "first", family: "first", from: cpFlashed, to: cpV1, verdict: v1, version: "1.0.0", slot: "a",
			aims: []string{phDataCreate, phProvision}, phases: []phase{
				{name: phBoot, marker: ubootBanner},
				{name: phDataCreate, marker: initLoaded},
				{name: phBoot, marker: initSwitching},
				{name: phProvision, marker: `msg="provisioning files found on bootsel"`},
				{name: phBoot, marker: "Finished pibake-provision.service"},
			}},
		{name: "grow", family: "grow", from: cpV1, grow: 256 << 20, verdict: v1, version: "1.0.0", slot: "a",
			aims: []string{phDataGrow}, phases: []phase{
				{name: phBoot, marker: ubootBanner},
				{name: phDataGrow, marker: initLoaded},
				{name: phBoot, marker: initSwitching},
			}},
		{name: "v2", family: "v2", from: cpV1, mid: cpV2Armed, to: cpV2, repo: "2.0.0", verdict: v2, version: "2.0.0", slot: "b",
			aims: install, phases: updatePhases(commit)},
		{name: "v2t", family: "v2", from: cpV2Armed, to: cpV2, repo: "2.0.0", verdict: v2, version: "2.0.0", slot: "b",
			aims: []string{phTrialUBoot, phTrialBoot, phHealth, phCommit}, phases: trialPhases(commit)},
		{name: "v3", family: "v3", from: cpV2, mid: cpV3Armed, repo: "3.0.0", verdict: v3, version: "2.0.0", slot: "b",
			aims: install, phases: updatePhases(rollback)},
		{name: "v3t", family: "v3", from: cpV3Armed, repo: "3.0.0", verdict: v3, version: "2.0.0", slot: "b",
			aims: []string{phTrialUBoot, phTrialBoot, phHealth, phRollback}, phases: trialPhases(rollback)},
	}
}

// tracker follows a run's console through a leg's phases, in order.
type tracker struct {
	phases []phase
	i      int           // the current phase, -1 before the first
	since  time.Duration // when it began
	done   map[string]time.Duration
}

func newTracker(phases []phase) *tracker {
	return &tracker{phases: phases, i: -1, done: map[string]time.Duration{}}
}

// feed moves to the next phase if line holds its marker and returns the
// phase entered, or "".
func (tr *tracker) feed(line string, at time.Duration) string {
	if tr.i+1 >= len(tr.phases) || strings.HasPrefix(strings.TrimSpace(line), "E2E-SOAK") {
		return ""
	}
	next := tr.phases[tr.i+1]
	if !strings.Contains(line, next.marker) {
		return ""
	}
	if tr.i >= 0 {
		tr.done[tr.phases[tr.i].name] = at - tr.since
	}
	tr.i, tr.since = tr.i+1, at
	return next.name
}

// current is the phase a cut at the given time lands in, and how far
// into it.
func (tr *tracker) current(at time.Duration, settled bool) (string, time.Duration) {
	if tr.i < 0 {
		return phBoot, at
	}
	p := tr.phases[tr.i]
	if settled {
		return phSettled, at - tr.since
	}
	if p.window > 0 && at-tr.since > p.window {
		return phSettled, at - tr.since
	}
	return p.name, at - tr.since
}

// soakStatus is one E2E-SOAK line: what the device runs and the agent's
// state (pibake-updater status --json).
type soakStatus struct {
	line                string
	version, slot, root string
	host, marker, prov  string
	data                int64
	status              agentStatus
	statusErr           error
}

type agentStatus struct {
	Booted string `json:"booted"`
	State  struct {
		Committed string                     `json:"committed"`
		Degraded  string                     `json:"degraded"`
		Slots     map[string]json.RawMessage `json:"slots"`
		Trial     *struct {
			Slot    string `json:"slot"`
			Release struct {
				Version string `json:"version"`
			} `json:"release"`
		} `json:"trial"`
		Failed map[string]struct {
			Stage string `json:"stage"`
			Check string `json:"check"`
		} `json:"failed"`
		Download json.RawMessage `json:"download"`
	} `json:"state"`
}

// slotVersion is the version the state records for a slot.
func (a agentStatus) slotVersion(s string) (string, bool) {
	raw, ok := a.State.Slots[s]
	if !ok {
		return "", false
	}
	var r struct{ Version string }
	_ = json.Unmarshal(raw, &r)
	return r.Version, true
}

func parseSoak(line string) (soakStatus, bool) {
	i := strings.Index(line, "E2E-SOAK ")
	if i < 0 {
		return soakStatus{}, false
	}
	head, st, _ := strings.Cut(line[i+len("E2E-SOAK "):], " status=")
	s := soakStatus{line: strings.TrimSpace(line[i:])}
	for _, f := range strings.Fields(head) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "version":
			s.version = v
		case "slot":
			s.slot = v
		case "root":
			s.root = v
		case "host":
			s.host = v
		case "marker":
			s.marker = v
		case "prov":
			s.prov = v
		case "data":
			fmt.Sscan(v, &s.data)
		}
	}
	s.statusErr = json.Unmarshal([]byte(st), &s.status)
	return s, true
}

// verified says what is wrong with the slot the device booted: it must be
// one the agent's state vouches for (a verified release, committed or as
// flashed) or the pending trial, and hold the release the state says.
func (s soakStatus) verified() error {
	if s.statusErr != nil {
		return nil // status printed while the state was being replaced: nothing to judge
	}
	a := s.status
	if a.Booted != s.slot {
		return fmt.Errorf("the kernel booted slot %q, status says %q", s.slot, a.Booted)
	}
	if a.State.Trial != nil && a.State.Trial.Slot == s.slot {
		if v := a.State.Trial.Release.Version; v != s.version {
			return fmt.Errorf("slot %s runs %s, the pending trial is %s", s.slot, s.version, v)
		}
		return nil
	}
	if len(a.State.Slots) == 0 && a.State.Committed == "" {
		return nil // a fresh device: the agent has not settled yet, the slots hold what was flashed
	}
	v, ok := a.slotVersion(s.slot)
	if !ok {
		return fmt.Errorf("slot %s runs %s, which the agent's state does not vouch for", s.slot, s.version)
	}
	if v != s.version && v != "as flashed" {
		return fmt.Errorf("slot %s runs %s, the state says it holds %s", s.slot, s.version, v)
	}
	return nil
}

// failingTrial is the release the agent's log line says just failed its
// trial ("trial failed" version=...), or "".
func failingTrial(line string) string {
	_, rest, ok := strings.Cut(line, `msg="trial failed" `)
	if !ok {
		return ""
	}
	for _, f := range strings.Fields(rest) {
		if v, ok := strings.CutPrefix(f, "version="); ok {
			return v
		}
	}
	return ""
}

// rollbackWindow: the status was printed after the agent, in this boot,
// said the running release failed its trial (failed is that release), and
// the state records the failure: the failed trial's last seconds before
// its reboot, when the state no longer vouches for the running slot by
// design (agent.fail). Not a boot of an unvouched slot.
func (s soakStatus) rollbackWindow(failed string) bool {
	if failed == "" || s.statusErr != nil || s.version != failed {
		return false
	}
	_, ok := s.status.State.Failed[failed]
	return ok && s.status.Booted == s.slot
}

// settled is nil when the device runs version in slot, committed, with
// nothing pending, and failed (if not "") recorded as failed at its
// health check, nothing else failed.
func (s soakStatus) settled(version, slot, failed string) error {
	if s.statusErr != nil {
		return fmt.Errorf("status unreadable: %v", s.statusErr)
	}
	a := s.status.State
	switch {
	case s.version != version || s.slot != slot:
		return fmt.Errorf("runs %s in slot %s", s.version, s.slot)
	case a.Committed != slot:
		return fmt.Errorf("committed slot %q", a.Committed)
	case a.Trial != nil:
		return fmt.Errorf("trial of %s pending", a.Trial.Release.Version)
	case a.Degraded != "":
		return fmt.Errorf("degraded: %s", a.Degraded)
	case len(a.Download) > 0 && string(a.Download) != "null":
		return fmt.Errorf("a download is recorded in progress")
	}
	if v, ok := s.status.slotVersion(slot); !ok || (v != version && v != "as flashed") {
		return fmt.Errorf("the state says slot %s holds %q", slot, v)
	}
	want := 0
	if failed != "" {
		want = 1
		f, ok := a.Failed[failed]
		if !ok {
			return fmt.Errorf("%s not recorded as failed", failed)
		}
		// Its http check cannot pass; on a loaded machine a unit check
		// before it can run out the deadline first (seen 2026-12-07:
		// "unit hello.service … is activating"), the same verdict.
		if f.Stage != "health" || f.Check != badCheck && !strings.HasPrefix(f.Check, "unit ") {
			return fmt.Errorf("%s recorded failed at %s (%s), want at health (%s or a unit check)", failed, f.Stage, f.Check, badCheck)
		}
	}
	if len(a.Failed) != want {
		return fmt.Errorf("failed releases %v", a.Failed)
	}
	return nil
}
