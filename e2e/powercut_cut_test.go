package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// cutRecord is what one cut (or one leg run without a cut, to make a
// checkpoint, or a chain's runs as a whole) did and found.
type cutRecord struct {
	n           int
	chain, link int // the chain and the cut's place in it (1, 2, ...)
	leg, aimed  string
	u           float64
	hit         string        // the phase the cut landed in ("" no cut)
	into, at    time.Duration // how far into it; since that QEMU run started
	missed      bool          // the aimed phase never began
	recovered   bool          // a verified status line came after the cut
	runs        int
	problems    []string // "kind: what", kind one of problemKinds
	took        time.Duration
	logs        []string
	final       string // the verdict's status line
	uncutReason string
}

// problemKinds, in the report's order.
var problemKinds = []string{"brick", "unverified", "verdict", "data", "slot", "provisioning", "bootsel", "check"}

// maxRuns bounds the QEMU runs of one leg beyond one a cut: a stop for a
// checkpoint, and two more.
const maxRuns = 3

// runLeg runs leg l in lane ln, on a copy of its checkpoint, with the
// chain's cuts, one a QEMU run (none: a run without a cut), until the
// device settles and powers off; then it checks the card, and keeps it
// as the leg's end checkpoint if that is missing. It returns the chain's
// record (its runs, consoles, time and final problems) and one record a
// cut.
func (c *campaign) runLeg(ln *soakLane, l *leg, cuts []*plannedCut) (*cutRecord, []*cutRecord) {
	start := time.Now()
	sum := &cutRecord{leg: l.name}
	name := "calibrate-" + l.name
	recs := make([]*cutRecord, len(cuts))
	for i, pc := range cuts {
		recs[i] = &cutRecord{n: pc.n, chain: pc.chain, link: pc.link, leg: l.name, aimed: pc.phase, u: pc.u}
	}
	if len(cuts) > 0 {
		name = fmt.Sprintf("chain%03d-cut%03d-%s", cuts[0].chain, cuts[0].n, l.name)
	}
	disk, from := ln.card, c.checkpoint(l.from)
	if err := copyDisk(disk, from, fileSizeOr0(from)+l.grow); err != nil {
		sum.problems = append(sum.problems, "check: "+err.Error())
		settleChain(sum, recs)
		return sum, recs
	}
	if ln.srv != nil {
		ln.srv.repo.Store(ptr(c.repos[l.repo]))
	}
	final := c.legRuns(l, ln, name, cuts, sum, recs)
	sum.took = time.Since(start)
	switch {
	case final == nil && len(sum.problems) == 0:
		sum.problems = append(sum.problems, fmt.Sprintf("verdict: not settled after %d runs", sum.runs))
	case final != nil:
		sum.final = final.line
		sum.problems = append(sum.problems, c.checkEnd(l, *final, disk, filepath.Join(c.dir, name))...)
		if len(sum.problems) == 0 && !anyProblem(recs) && l.to != "" && c.checkpoint(l.to) == "" {
			if l.to == cpV1 {
				c.mu.Lock()
				c.dataV1 = final.data
				c.mu.Unlock()
			}
			c.saveCheckpoint(l.to, disk)
		}
	}
	sum.took = time.Since(start)
	settleChain(sum, recs)
	return sum, recs
}

// checkEnd is the final checks of a chain's card (checkFn, if set).
func (c *campaign) checkEnd(l *leg, final soakStatus, disk, keep string) []string {
	if c.checkFn != nil {
		return c.checkFn(l, final, disk, keep)
	}
	return append(c.checkFinal(l, final), c.checkDisk(l, disk, keep)...)
}

// legRuns starts QEMU on lane ln's card again and again, the next cut of
// the chain in each run, until the device settled (its verdict's status
// line) or a run failed (in sum.problems).
func (c *campaign) legRuns(l *leg, ln *soakLane, name string, cuts []*plannedCut, sum *cutRecord, recs []*cutRecord) *soakStatus {
	next, made := 0, -1 // the next cut to make; the last made
	var afterHarvest []phase
	// The mid checkpoint (the reboot into the trial) is taken only from a
	// chain with no trial-consuming cut: after one, the card's state
	// counts a spent chance, and a chain started there with another such
	// cut could see the release fail for it (powercut_chain_test.go).
	// A cut lands in the phase it was aimed at or a later one (it is
	// timed from that phase's first line): one aimed at the install may
	// land in the trial. Once a cut was aimed or landed there, no mid
	// checkpoint is taken, and the next run follows the trial's retry,
	// where a cut aimed at the install never comes.
	harvest := l.mid != "" && !(&cutChain{cuts: cuts}).consumes()
	for i := 0; i < maxRuns+len(cuts); i++ {
		spent := made >= 0 && (trialConsuming(cuts[made].phase) || trialConsuming(recs[made].hit))
		if spent {
			harvest = false
		}
		sp := runSpec{leg: l, lane: ln, disk: ln.card, name: fmt.Sprintf("%s-run%d", name, i), harvest: harvest && c.checkpoint(l.mid) == "", phases: afterHarvest}
		if spent && afterHarvest == nil {
			sp.phases = retryPhases(l)
		}
		if next < len(cuts) {
			pc := cuts[next]
			sp.cut, sp.delay = pc, time.Duration(pc.u*float64(c.estimate(l, pc.phase)))
		}
		run := c.run
		if c.runFn != nil {
			run = c.runFn
		}
		r := run(sp)
		sum.runs++
		sum.logs = append(sum.logs, r.log)
		if i == 0 || afterHarvest != nil {
			// Runs that went the story's way: the first (until its
			// cut), and the one that goes on from a checkpoint's stop.
			c.learn(l, r.done)
		}
		afterHarvest = nil
		attribute(sum, recs, made, r)
		switch {
		case r.killed:
			rec := recs[next]
			rec.hit, rec.into, rec.at = r.hit, r.into, r.at
			made, next = next, next+1
		case r.harvested:
			c.saveCheckpoint(l.mid, ln.card)
			afterHarvest = trialPhases(l.phases[len(l.phases)-1])
		case r.err != nil:
			sum.problems = append(sum.problems, runProblem(r))
			return nil
		default:
			for i, rec := range recs[next:] {
				// Settled before the aimed phase began (or, for the
				// run's own cut, before its moment came).
				rec.missed = i > 0 || r.missed
			}
			return r.settled
		}
	}
	return nil
}

// attribute gives a run's status lines to the cuts before it: a boot the
// state does not vouch for is the last cut's problem (before any cut, the
// chain's), and a verified one proves every cut made so far recovered.
func attribute(sum *cutRecord, recs []*cutRecord, made int, r runResult) {
	for _, u := range r.unverified {
		if made >= 0 {
			recs[made].problems = append(recs[made].problems, "unverified: "+u)
		} else {
			sum.problems = append(sum.problems, "unverified: "+u)
		}
	}
	if r.verifiedLines > 0 {
		for _, rec := range recs[:made+1] {
			rec.recovered = true
		}
	}
}

func ptr(s string) *string { return &s }

func fileSizeOr0(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// runProblem says how a run that never settled ended: a device that never
// reported (brick) or one that did, in a state other than the verdict.
func runProblem(r runResult) string {
	if r.last == nil {
		return fmt.Sprintf("brick: %v; the device never reported (console %s)", r.err, r.log)
	}
	return fmt.Sprintf("verdict: %v; last status: %s (console %s)", r.err, r.last.line, r.log)
}

// checkFinal checks what the device said at its verdict: the application
// file, the provisioning, and on a grown card the data filesystem's size.
func (c *campaign) checkFinal(l *leg, s soakStatus) []string {
	var bad []string
	if s.marker != markerSum() {
		bad = append(bad, "data: the application file's sha256 on the device is "+s.marker)
	}
	if s.host != soakHost || s.prov != soakProv {
		bad = append(bad, fmt.Sprintf("provisioning: host %q, provisioned file %q", s.host, s.prov))
	}
	c.mu.Lock()
	dataV1 := c.dataV1
	c.mu.Unlock()
	if l.grow > 0 && dataV1 > 0 && s.data < dataV1+l.grow/2 {
		bad = append(bad, fmt.Sprintf("data: the data filesystem is %d bytes on a card %d bytes bigger than C1's (%d)", s.data, l.grow, dataV1))
	}
	return bad
}

// checkpoint is the path of checkpoint cp ("" not made yet).
func (c *campaign) checkpoint(cp string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkpoints[cp]
}

// ensure makes checkpoint cp if it is missing, in lane ln: the leg that
// ends (or passes) there runs without a cut, from its own checkpoint.
// One lane calibrates at a time; a lane whose checkpoint is there does
// not wait for it.
func (c *campaign) ensure(ln *soakLane, cp string) error {
	if c.checkpoint(cp) != "" {
		return nil
	}
	c.ensureMu.Lock()
	defer c.ensureMu.Unlock()
	return c.ensureLocked(ln, cp)
}

func (c *campaign) ensureLocked(ln *soakLane, cp string) error {
	if c.checkpoint(cp) != "" {
		return nil
	}
	for _, l := range c.legs {
		if l.to != cp && l.mid != cp {
			continue
		}
		if err := c.ensureLocked(ln, l.from); err != nil {
			return err
		}
		rec, _ := c.runLeg(ln, l, nil)
		rec.uncutReason = "checkpoint " + cp
		c.mu.Lock()
		c.calibration = append(c.calibration, rec)
		c.mu.Unlock()
		c.t.Logf("leg %s run without a cut for checkpoint %s in lane %d: %d runs, %s", l.name, cp, ln.n, rec.runs, rec.took.Round(time.Second))
		if len(rec.problems) > 0 {
			return fmt.Errorf("leg %s without a cut: %s (console %s)", l.name, strings.Join(rec.problems, "; "), strings.Join(rec.logs, " "))
		}
		if c.checkpoint(cp) == "" {
			return fmt.Errorf("leg %s without a cut did not reach checkpoint %s (console %s)", l.name, cp, strings.Join(rec.logs, " "))
		}
		return nil
	}
	return fmt.Errorf("no leg makes checkpoint %s", cp)
}

// saveCheckpoint copies the card as checkpoint cp, unless a lane did
// first (one copy at a time: two lanes may reach the same checkpoint).
func (c *campaign) saveCheckpoint(cp, disk string) {
	c.cpMu.Lock()
	defer c.cpMu.Unlock()
	if c.checkpoint(cp) != "" {
		return
	}
	p := filepath.Join(c.dir, cp+".img")
	if err := copyDisk(p, disk, 0); err != nil {
		c.t.Errorf("checkpoint %s: %v", cp, err)
		return
	}
	c.mu.Lock()
	c.checkpoints[cp] = p
	c.mu.Unlock()
}

// keepCard keeps the card of a failed cut (three at most).
func (c *campaign) keepCard(ln *soakLane, rec *cutRecord) {
	c.mu.Lock()
	keep := c.kept < 3
	c.kept++
	c.mu.Unlock()
	if !keep {
		return
	}
	p := filepath.Join(c.dir, fmt.Sprintf("cut%03d-card.img", rec.n))
	if err := os.Rename(ln.card, p); err == nil {
		c.t.Logf("cut %d: the card is kept in %s", rec.n, p)
	}
}

// defaultLength is a phase's length before one was measured in this
// campaign (a 2-core host under TCG).
var defaultLength = map[string]time.Duration{
	phDataCreate: 2 * time.Second, phProvision: 4 * time.Second, phDataGrow: 2 * time.Second,
	phDownload: 30 * time.Second, phWrite: 30 * time.Second, phArm: 30 * time.Second,
	phTrialUBoot: 50 * time.Millisecond, phTrialBoot: 60 * time.Second, phHealth: 60 * time.Second,
	phRollback: 120 * time.Second,
}

// estimate is how long the phase lasted the last time it was seen whole
// in this campaign (its window for commit).
func (c *campaign) estimate(l *leg, ph string) time.Duration {
	if w := l.phase(ph).window; w > 0 {
		return w
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.est[l.family+"/"+ph]; ok {
		return d
	}
	return defaultLength[ph]
}

// learn keeps the lengths of the phases a run went through before its cut.
func (c *campaign) learn(l *leg, done map[string]time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ph, d := range done {
		if ph != phBoot {
			c.est[l.family+"/"+ph] = d
		}
	}
}

// report is the closing note: cuts, phases hit, problems by kind, time.
func (c *campaign) report() {
	c.sortRecords()
	var b strings.Builder
	took := time.Since(c.started)
	var cutTime, calTime time.Duration
	cuts := 0
	for _, r := range c.records {
		cutTime += r.took
		if r.hit != "" {
			cuts++
		}
	}
	for _, r := range c.calibration {
		calTime += r.took
	}
	fmt.Fprintf(&b, "power-cut campaign, PIBAKE_SOAK_SEED=%d, plan %s: %d cuts made (%d aimed) in %d chains, %d lanes, %s in all (%.1f cuts an hour); chains %s (%s a cut made), legs without a cut for checkpoints %s\n",
		c.cfg.seed, planID(c.cfg), cuts, len(c.records), c.chains, c.cfg.laneCount(), took.Round(time.Second), float64(cuts)/took.Hours(),
		cutTime.Round(time.Second), avg(cutTime, cuts), calTime.Round(time.Second))
	aimed, hit := map[string]int{}, c.hits()
	for _, r := range c.records {
		aimed[r.aimed]++
	}
	var phases []string
	for ph := range aimed {
		phases = append(phases, ph)
	}
	for ph := range hit {
		if aimed[ph] == 0 {
			phases = append(phases, ph)
		}
	}
	sort.Strings(phases)
	fmt.Fprintf(&b, "%-14s %5s %5s\n", "phase", "aimed", "hit")
	for _, ph := range phases {
		fmt.Fprintf(&b, "%-14s %5d %5d\n", ph, aimed[ph], hit[ph])
	}
	kinds := map[string]int{}
	for _, r := range c.records {
		seen := map[string]bool{}
		for _, p := range r.problems {
			k, _, _ := strings.Cut(p, ":")
			if !seen[k] {
				seen[k] = true
				kinds[k]++
			}
		}
	}
	var parts []string
	for _, k := range problemKinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	fmt.Fprintf(&b, "cuts with a problem, by kind: %s\n", strings.Join(parts, ", "))
	for _, r := range c.records {
		fmt.Fprintf(&b, "cut %3d chain %3d.%d %-5s aimed %-12s hit %-12s %8s in, at %6s, %6s, %d problems\n", r.n, r.chain, r.link, r.leg, r.aimed, r.hit,
			r.into.Round(10*time.Millisecond), r.at.Round(time.Second), r.took.Round(time.Second), len(r.problems))
	}
	c.t.Log("\n" + b.String())
	os.WriteFile(filepath.Join(c.dir, "summary.txt"), []byte(b.String()), 0o644)
	os.WriteFile(filepath.Join(os.TempDir(), "pibake-e2e-soak-summary.txt"), []byte(b.String()), 0o644)
}

func avg(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return (d / time.Duration(n)).Round(time.Second)
}
