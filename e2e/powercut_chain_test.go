package e2e

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/agent"
)

// Chains: several cuts in one run of a leg. The leg's checkpoint is
// booted once; after a cut QEMU starts again on the same card, and that
// boot is both the recovery of the cut (its first status line must show
// a slot the agent's state vouches for) and the carrier of the chain's
// next cut. After the last cut the leg goes on to its verdict and the
// full checks run once for the chain (the verdict, e2fsck -fn, the
// application file, the booted slot against the signed artifacts), so K
// cuts share one checkpoint boot, one settling, one power-off and one
// e2fsck. A cut's own proof is the first status line printed after it;
// when the next cut comes before one (a cut in the first boot's data
// partition creation, then another in the boot after it), the first line
// after both proves both. The chain's final verdict counts for each of
// its cuts.
//
// The oracle stays the release's real verdict because the planner counts
// the chances the agent gives a trial (updater/agent/afterboot.go,
// trialDidNotRun): a trial that never came up far enough to count its
// boot is retried once (a second such fallback fails the release "at
// boot"), and one cut short after it counted its boot is retried until
// MaxInterrupted (3) such cuts fail it "at health" with no check named.
// A cut from the trial's U-Boot to its health checks may be either kind
// (the boot is counted as the agent starts, just after the health
// phase's first line), a cut in the commit or the rollback only the
// second. So a chain holds at most one cut in trial-uboot, trial-boot or
// health, and at most MaxInterrupted-1 (2) trial-consuming cuts in all:
// neither count can reach its limit, and the release's verdict is what
// it is without cuts (v2 committed, v3 failed at its health check). A cut
// lands in its aimed phase or a later one, never an earlier one (it is
// timed from the phase's first line), so one aimed at the install may
// spend a chance of the trial; after such a cut the chain's next ones are
// aimed in the trial's retry (legRuns), where an install's phase never
// comes, and the count holds.

// trialConsuming says whether a cut in that phase can spend one of the
// chances the agent gives a trial: from the trial's U-Boot (which counts
// the try down) until the commit or the failure is on the card.
func trialConsuming(ph string) bool {
	switch ph {
	case phTrialUBoot, phTrialBoot, phHealth, phCommit, phRollback:
		return true
	}
	return false
}

// maybeUnbooted says whether a cut in that phase may come before the
// trial counted its boot (the agent's first write at start).
func maybeUnbooted(ph string) bool {
	return ph == phTrialUBoot || ph == phTrialBoot || ph == phHealth
}

// admits says whether pc can join the chain: room left, each phase a
// card goes through once aimed once, and the trial's chances counted
// (above).
func (ch *cutChain) admits(pc *plannedCut, k int) bool {
	if len(ch.cuts) >= k || (oncePerCard(pc.phase) && ch.aims(pc.phase)) {
		return false
	}
	if !trialConsuming(pc.phase) {
		return true
	}
	consuming := 0
	for _, o := range ch.cuts {
		if trialConsuming(o.phase) {
			consuming++
		}
		if maybeUnbooted(o.phase) && maybeUnbooted(pc.phase) {
			return false
		}
	}
	return consuming < agent.MaxInterrupted-1
}

// oncePerCard says whether the phase happens once in a card's life: the
// data partition's creation and growth, the provisioning. After a cut
// that came too late to interrupt it, the carrier boot goes through the
// same console lines (pibake-init's) without doing the work, so a
// second cut aimed there would be counted in a phase it never hit; a
// chain aims at each of them once.
func oncePerCard(ph string) bool {
	return ph == phDataCreate || ph == phDataGrow || ph == phProvision
}

func (ch *cutChain) aims(ph string) bool {
	for _, pc := range ch.cuts {
		if pc.phase == ph {
			return true
		}
	}
	return false
}

// cutChain is the cuts made in one run of a leg, in the order made.
type cutChain struct {
	n    int
	leg  *leg
	cuts []*plannedCut
}

func (ch *cutChain) consumes() bool {
	for _, pc := range ch.cuts {
		if trialConsuming(pc.phase) {
			return true
		}
	}
	return false
}

// planChains draws the plan (planCuts) and groups each leg's cuts into
// chains of at most cfg.chain cuts (admits); within a chain the cuts
// follow the story (the leg's phases in order). Cuts are numbered again
// in the order they are made (chain by chain): with chains of one the
// numbers, phases and moments are the plan's, as before chains existed.
//
// Cuts aimed at a trial phase stay in their legs (v2t, v3t), which start
// at the reboot into the trial: a chain of the install's leg could carry
// them too, but it starts two boots and the whole install earlier, which
// costs more than the trial leg's own start.
func planChains(legs []*leg, cfg soakConfig) []*cutChain {
	k := cfg.chainLen()
	byLeg := map[*leg][]*plannedCut{}
	for _, pc := range planCuts(legs, cfg) {
		byLeg[pc.leg] = append(byLeg[pc.leg], pc)
	}
	var chains []*cutChain
	for _, l := range legs {
		chains = append(chains, chunk(l, byLeg[l], k)...)
	}
	n := 0
	for i, ch := range chains {
		ch.n = i + 1
		sort.SliceStable(ch.cuts, func(a, b int) bool {
			return phaseIndex(ch.leg, ch.cuts[a].phase) < phaseIndex(ch.leg, ch.cuts[b].phase)
		})
		for j, pc := range ch.cuts {
			n++
			pc.n, pc.chain, pc.link = n, ch.n, j+1
		}
	}
	return chains
}

// chunk groups one leg's cuts into chains in plan order, each cut into
// the first chain that admits it.
func chunk(l *leg, cuts []*plannedCut, k int) []*cutChain {
	var chains []*cutChain
	for _, pc := range cuts {
		var ch *cutChain
		for _, o := range chains {
			if ch == nil && o.admits(pc, k) {
				ch = o
			}
		}
		if ch == nil {
			ch = &cutChain{leg: l}
			chains = append(chains, ch)
		}
		ch.cuts = append(ch.cuts, pc)
	}
	return chains
}

// phaseIndex is the phase's place in the leg's story.
func phaseIndex(l *leg, ph string) int {
	for i, p := range l.phases {
		if p.name == ph {
			return i
		}
	}
	return len(l.phases)
}

// selected is the part of the chain a run makes: all of it, or with
// PIBAKE_SOAK_ONLY its links up to the last one listed (the card a cut
// finds is what the chain's earlier cuts left, so they run again too).
func (ch *cutChain) selected(only map[int]bool) []*plannedCut {
	if len(only) == 0 {
		return ch.cuts
	}
	last := 0
	for i, pc := range ch.cuts {
		if only[pc.n] {
			last = i + 1
		}
	}
	return ch.cuts[:last]
}

// anyDone says whether the ledger holds one of the chain's cuts.
func (ch *cutChain) anyDone(done map[int]bool) bool {
	for _, pc := range ch.cuts {
		if done[pc.n] {
			return true
		}
	}
	return false
}

// runChain makes the chain's cuts in lane ln, records them, and writes
// them to the ledger once the chain's final checks are done.
func (c *campaign) runChain(ln *soakLane, cuts []*plannedCut) {
	l := cuts[0].leg
	if err := c.ensure(ln, l.from); err != nil {
		c.t.Errorf("chain of cuts %d-%d: %v", cuts[0].n, cuts[len(cuts)-1].n, err)
		return
	}
	sum, recs := c.runLeg(ln, l, cuts)
	c.mu.Lock()
	c.records = append(c.records, recs...)
	c.chains++
	c.mu.Unlock()
	var ns []string
	for _, r := range recs {
		ns = append(ns, fmt.Sprint(r.n))
	}
	for _, rec := range recs {
		status := "ok"
		if len(rec.problems) > 0 {
			status = strings.Join(rec.problems, "; ")
			c.t.Errorf("cut %d (chain %d link %d, leg %s, aimed at %s, landed in %s %s in, %s after QEMU started): %s\n  replay: make soak SOAK_SEED=%d SOAK_CUTS=%d SOAK_CHAIN=%d SOAK_ONLY=%s\n  console: %s",
				rec.n, rec.chain, rec.link, rec.leg, rec.aimed, rec.hit, rec.into.Round(time.Millisecond), rec.at.Round(time.Second), status,
				c.cfg.seed, c.cfg.cuts, c.cfg.chainLen(), strings.Join(ns, ","), strings.Join(sum.logs, " "))
		}
		hit := rec.hit
		if rec.missed {
			hit = "none (the aimed phase never began)"
		}
		c.t.Logf("cut %3d chain %3d.%d %-5s aimed %-12s hit %-12s %7s in, %6s: %s", rec.n, rec.chain, rec.link, rec.leg, rec.aimed, hit,
			rec.into.Round(10*time.Millisecond), rec.took.Round(time.Second), status)
	}
	made := 0
	for _, r := range recs {
		if r.hit != "" {
			made++
		}
	}
	c.t.Logf("chain %d (leg %s, lane %d): %d cuts made of %d aimed, %d QEMU runs, %s", recs[0].chain, l.name, ln.n, made, len(recs), sum.runs, sum.took.Round(time.Second))
	if len(sum.problems) > 0 || anyProblem(recs) {
		c.keepCard(ln, recs[len(recs)-1])
	}
	c.appendLedger(recs)
}

func anyProblem(recs []*cutRecord) bool {
	for _, r := range recs {
		if len(r.problems) > 0 {
			return true
		}
	}
	return false
}

// appendLedger writes the chain's cuts to the ledger (an error there is
// the test's, the cuts are not lost from its log).
func (c *campaign) appendLedger(recs []*cutRecord) {
	if c.ledger == "" {
		return
	}
	lines := ledgerLines(recs, c.cfg, c.commit, time.Now())
	if err := appendLedger(c.ledger, lines); err != nil {
		c.t.Error(err)
	}
}

// ledgerLines are the ledger's lines for a chain's records.
func ledgerLines(recs []*cutRecord, cfg soakConfig, commit string, now time.Time) []ledgerLine {
	var lines []ledgerLine
	for _, r := range recs {
		verdict := "ok"
		if len(r.problems) > 0 {
			verdict = strings.Join(r.problems, "; ")
		}
		lines = append(lines, ledgerLine{date: now, commit: commit, seed: cfg.seed, plan: planID(cfg), cut: r.n, leg: r.leg,
			aimed: r.aimed, hit: r.hit, verdict: verdict, seconds: r.took.Seconds()})
	}
	return lines
}

// settleChain finishes the records of a chain whose runs are over: a cut
// no verified status line followed is a brick; the chain's problems
// (its verdict, its final checks) count for each cut; each cut made
// carries an equal share of the chain's time (a cut aimed at a phase
// that never began carries none).
func settleChain(sum *cutRecord, recs []*cutRecord) {
	made := 0
	for _, r := range recs {
		if r.hit != "" {
			made++
		}
	}
	for _, r := range recs {
		r.problems = append(r.problems, sum.problems...)
		if r.hit == "" {
			continue
		}
		if !r.recovered {
			r.problems = append(r.problems, "brick: no status line of a verified boot after this cut")
		}
		r.took = sum.took / time.Duration(made)
	}
}
