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
// checkpoint) did and found.
type cutRecord struct {
	n           int
	leg, aimed  string
	u           float64
	hit         string        // the phase the cut landed in ("" no cut)
	into, at    time.Duration // how far into it; since that QEMU run started
	missed      bool          // the aimed phase never began
	runs        int
	problems    []string // "kind: what", kind one of problemKinds
	took        time.Duration
	logs        []string
	final       string // the verdict's status line
	uncutReason string
}

// problemKinds, in the report's order.
var problemKinds = []string{"brick", "unverified", "verdict", "data", "slot", "provisioning", "bootsel", "check"}

// maxRuns bounds the QEMU runs of one leg: the cut, a stop for a
// checkpoint, and two more.
const maxRuns = 4

// cut runs one planned cut and records it.
func (c *campaign) cut(pc *plannedCut) {
	if err := c.ensure(pc.leg.from); err != nil {
		c.t.Errorf("cut %d: %v", pc.n, err)
		return
	}
	rec := c.runLeg(pc.leg, pc)
	c.records = append(c.records, rec)
	status := "ok"
	if len(rec.problems) > 0 {
		status = strings.Join(rec.problems, "; ")
		c.t.Errorf("cut %d (leg %s, aimed at %s, landed in %s %s in, %s after QEMU started): %s\n  replay: PIBAKE_SOAK_SEED=%d PIBAKE_SOAK_ONLY=%d make soak\n  console: %s",
			rec.n, rec.leg, rec.aimed, rec.hit, rec.into.Round(time.Millisecond), rec.at.Round(time.Second), status, c.cfg.seed, rec.n, strings.Join(rec.logs, " "))
		c.keepCard(rec)
	}
	hit := rec.hit
	if rec.missed {
		hit = "none (the aimed phase never began)"
	}
	c.t.Logf("cut %3d %-5s aimed %-12s hit %-12s %7s in, %d runs, %6s: %s", rec.n, rec.leg, rec.aimed, hit,
		rec.into.Round(10*time.Millisecond), rec.runs, rec.took.Round(time.Second), status)
}

// runLeg runs leg l on a copy of its checkpoint, with pc's cut in its
// first run (pc nil: no cut), until the device settles and powers off;
// then it checks the card, and keeps it as the leg's end checkpoint if
// that is missing.
func (c *campaign) runLeg(l *leg, pc *plannedCut) *cutRecord {
	start := time.Now()
	rec := &cutRecord{leg: l.name}
	name := "calibrate-" + l.name
	if pc != nil {
		rec.n, rec.aimed, rec.u = pc.n, pc.phase, pc.u
		name = fmt.Sprintf("cut%03d-%s", pc.n, l.name)
	}
	disk := filepath.Join(c.dir, "card.img")
	if err := copyDisk(disk, c.checkpoints[l.from], fileSizeOr0(c.checkpoints[l.from])+l.grow); err != nil {
		rec.problems = append(rec.problems, "check: "+err.Error())
		return rec
	}
	c.srv.repo.Store(ptr(c.repos[l.repo]))
	var final *soakStatus
	var afterHarvest []phase
	for i := 0; i < maxRuns && final == nil; i++ {
		sp := runSpec{leg: l, disk: disk, name: fmt.Sprintf("%s-run%d", name, i), harvest: l.mid != "" && c.checkpoints[l.mid] == "", phases: afterHarvest}
		if i == 0 && pc != nil {
			sp.cut, sp.delay = pc, time.Duration(pc.u*float64(c.estimate(l, pc.phase)))
		}
		r := c.run(sp)
		rec.runs++
		rec.logs = append(rec.logs, r.log)
		if i == 0 || afterHarvest != nil {
			// Runs that went the story's way: the first (until its
			// cut), and the one that goes on from a checkpoint's stop.
			c.learn(l, r.done)
		}
		afterHarvest = nil
		for _, u := range r.unverified {
			rec.problems = append(rec.problems, "unverified: "+u)
		}
		switch {
		case r.killed:
			rec.hit, rec.into, rec.at = r.hit, r.into, r.at
		case r.harvested:
			c.saveCheckpoint(l.mid, disk)
			afterHarvest = trialPhases(l.phases[len(l.phases)-1])
		case r.err != nil:
			rec.problems = append(rec.problems, runProblem(r))
			rec.took = time.Since(start)
			return rec
		default:
			rec.missed = r.missed
			final = r.settled
		}
	}
	rec.took = time.Since(start)
	if final == nil {
		rec.problems = append(rec.problems, fmt.Sprintf("verdict: not settled after %d runs", maxRuns))
		return rec
	}
	rec.final = final.line
	rec.problems = append(rec.problems, c.checkFinal(l, *final)...)
	rec.problems = append(rec.problems, c.checkDisk(l, disk, filepath.Join(c.dir, name))...)
	if len(rec.problems) == 0 && l.to != "" && c.checkpoints[l.to] == "" {
		if l.to == cpV1 {
			c.dataV1 = final.data
		}
		c.saveCheckpoint(l.to, disk)
	}
	rec.took = time.Since(start)
	return rec
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
	if l.grow > 0 && c.dataV1 > 0 && s.data < c.dataV1+l.grow/2 {
		bad = append(bad, fmt.Sprintf("data: the data filesystem is %d bytes on a card %d bytes bigger than C1's (%d)", s.data, l.grow, c.dataV1))
	}
	return bad
}

// ensure makes checkpoint cp if it is missing: the leg that ends (or
// passes) there runs without a cut, from its own checkpoint.
func (c *campaign) ensure(cp string) error {
	if c.checkpoints[cp] != "" {
		return nil
	}
	for _, l := range c.legs {
		if l.to != cp && l.mid != cp {
			continue
		}
		if err := c.ensure(l.from); err != nil {
			return err
		}
		rec := c.runLeg(l, nil)
		rec.uncutReason = "checkpoint " + cp
		c.calibration = append(c.calibration, rec)
		c.t.Logf("leg %s run without a cut for checkpoint %s: %d runs, %s", l.name, cp, rec.runs, rec.took.Round(time.Second))
		if len(rec.problems) > 0 {
			return fmt.Errorf("leg %s without a cut: %s (console %s)", l.name, strings.Join(rec.problems, "; "), strings.Join(rec.logs, " "))
		}
		if c.checkpoints[cp] == "" {
			return fmt.Errorf("leg %s without a cut did not reach checkpoint %s (console %s)", l.name, cp, strings.Join(rec.logs, " "))
		}
		return nil
	}
	return fmt.Errorf("no leg makes checkpoint %s", cp)
}

func (c *campaign) saveCheckpoint(cp, disk string) {
	if c.checkpoints[cp] != "" {
		return
	}
	p := filepath.Join(c.dir, cp+".img")
	if err := copyDisk(p, disk, 0); err != nil {
		c.t.Errorf("checkpoint %s: %v", cp, err)
		return
	}
	c.checkpoints[cp] = p
}

// keepCard keeps the card of a failed cut (three at most).
func (c *campaign) keepCard(rec *cutRecord) {
	if c.kept >= 3 {
		return
	}
	c.kept++
	p := filepath.Join(c.dir, fmt.Sprintf("cut%03d-card.img", rec.n))
	if err := os.Rename(filepath.Join(c.dir, "card.img"), p); err == nil {
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
	if d, ok := c.est[l.family+"/"+ph]; ok {
		return d
	}
	return defaultLength[ph]
}

// learn keeps the lengths of the phases a run went through before its cut.
func (c *campaign) learn(l *leg, done map[string]time.Duration) {
	for ph, d := range done {
		if ph != phBoot {
			c.est[l.family+"/"+ph] = d
		}
	}
}

// report is the closing note: cuts, phases hit, problems by kind, time.
func (c *campaign) report() {
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
	fmt.Fprintf(&b, "power-cut campaign, PIBAKE_SOAK_SEED=%d: %d cuts made (%d planned), %s in all; cuts %s (%s each), legs without a cut for checkpoints %s\n",
		c.cfg.seed, cuts, len(c.records), took.Round(time.Second), cutTime.Round(time.Second), avg(cutTime, len(c.records)), calTime.Round(time.Second))
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
		fmt.Fprintf(&b, "cut %3d %-5s aimed %-12s hit %-12s %8s in, at %6s, %d runs, %6s, %d problems\n", r.n, r.leg, r.aimed, r.hit,
			r.into.Round(10*time.Millisecond), r.at.Round(time.Second), r.runs, r.took.Round(time.Second), len(r.problems))
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
