package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/agent"
)

// The campaign's pieces that need no QEMU: its plan, the phase tracker,
// the reading of the guest's status lines, the card copies. These run in
// every go test, without PIBAKE_E2E.

func TestPowerCutPlan(t *testing.T) {
	legs := soakLegs()
	sample := planCuts(legs, soakConfig{cuts: 3, sample: true, seed: 7})
	if len(sample) != 3 {
		t.Fatalf("sample of %d cuts", len(sample))
	}
	groups := [][]string{{"first"}, {"v2"}, {"v2t"}}
	for i, pc := range sample {
		if pc.n != i+1 || !contains(groups[i], pc.leg.name) || !contains(pc.leg.aims, pc.phase) || pc.u < 0 || pc.u >= 1 {
			t.Errorf("sample cut %d: %d %s %s %f", i, pc.n, pc.leg.name, pc.phase, pc.u)
		}
	}
	soak := planCuts(legs, soakConfig{cuts: 40, seed: 7})
	again := planCuts(legs, soakConfig{cuts: 40, seed: 7})
	pairs := map[string]int{}
	last := -1
	order := map[string]int{}
	for i, l := range legs {
		order[l.name] = i
	}
	for i, pc := range soak {
		if again[i].leg != pc.leg || again[i].phase != pc.phase || again[i].u != pc.u {
			t.Errorf("cut %d differs between two plans of the same seed", pc.n)
		}
		if order[pc.leg.name] < last {
			t.Errorf("cut %d (%s) runs after a later leg's", pc.n, pc.leg.name)
		}
		last = order[pc.leg.name]
		pairs[pc.leg.name+"/"+pc.phase]++
	}
	if len(pairs) != 17 {
		t.Errorf("40 cuts aim at %d (leg, phase) pairs, want all 17: %v", len(pairs), pairs)
	}
	for p, n := range pairs {
		if n < 2 {
			t.Errorf("%s: %d cuts in 40", p, n)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// In a chain's carrier run after a cut in the write, the agent verifies
// the boot artifact again instead of writing it: the root's write begins
// there.
func TestPowerCutTrackerResumed(t *testing.T) {
	tr := newTracker(updatePhases(phase{name: phCommit, marker: "msg=committed"}))
	for i, c := range []struct{ line, enters string }{
		{"U-Boot 2025.01-3", phBoot},
		{"pibake-updater[301]: level=INFO msg=installing image=demo version=2.0.0", phDownload},
		{`pibake-updater[301]: level=INFO msg="artifact already written and verified" artifact=boot`, phWrite},
		{`pibake-updater[301]: level=INFO msg="artifact written and verified" artifact=root bytes=1`, ""},
		{"pibake-updater[301]: level=INFO msg=installed version=2.0.0", phArm},
	} {
		if got := tr.feed(c.line, time.Duration(i)*time.Second); got != c.enters {
			t.Errorf("line %d %q: entered %q, want %q", i, c.line, got, c.enters)
		}
	}
}

// The boot after a cut in the trial: the old slot's boot, whose U-Boot
// and agent lines are no trial's, until the agent arms the trial again.
func TestPowerCutTrackerRetry(t *testing.T) {
	tr := newTracker(retryPhases(soakLegs()[2]))
	for i, c := range []struct{ line, enters string }{
		{"U-Boot 2025.01-3", phBoot},
		{"** Booting bootflow 'virtio-blk#33.bootdev.part_1' with script", ""},
		{"pibake: booting slot a (tries left: A 2, B 0)", ""},
		{"[  OK  ] Started pibake-updater.service - pibake: A/B update agent", ""},
		{`pibake-updater[288]: level=WARN msg="trial will be tried again" version=2.0.0 slot=b`, ""},
		{`pibake-updater[288]: level=INFO msg="rebooting into the trial" slot=b`, phBoot},
		{"U-Boot 2025.01-3", ""},
		{"** Booting bootflow 'virtio-blk#33.bootdev.part_1' with script", phTrialUBoot},
		{"pibake: booting slot b (tries left: A 3, B 0)", phTrialBoot},
		{"[  OK  ] Started pibake-updater.service - pibake: A/B update agent", phHealth},
		{"pibake-updater[288]: level=INFO msg=committed version=2.0.0 slot=b", phCommit},
	} {
		if got := tr.feed(c.line, time.Duration(i)*time.Second); got != c.enters {
			t.Errorf("line %d %q: entered %q, want %q", i, c.line, got, c.enters)
		}
	}
}

func TestPowerCutTracker(t *testing.T) {
	var v2 *leg
	for _, l := range soakLegs() {
		if l.name == "v2" {
			v2 = l
		}
	}
	tr := newTracker(v2.phases)
	console := []struct {
		line, enters string
	}{
		{"U-Boot 2025.01-3 (Jan 01 2025)", phBoot},
		{"** Booting bootflow 'virtio-blk#33.bootdev.part_1' with script", ""}, // not the trial's yet
		{"[   20.1] pibake-updater[301]: time=... level=INFO msg=installing image=demo version=2.0.0", phDownload},
		{`E2E-SOAK version=1.0.0 slot=a msg="artifact written and verified"`, ""}, // never from a status line
		{`[   30.2] pibake-updater[301]: level=INFO msg=artifact artifact=boot`, ""},
		{`[   31.2] pibake-updater[301]: level=INFO msg="artifact written and verified" artifact=boot`, phWrite},
		{`[   40.0] pibake-updater[301]: level=INFO msg="artifact written and verified" artifact=root`, ""},
		{"[   40.1] pibake-updater[301]: level=INFO msg=installed version=2.0.0", phArm},
		{"U-Boot 2025.01-3", ""},
		{"** Booting bootflow 'virtio-blk#33.bootdev.part_1' with script", phTrialUBoot},
		{"pibake: booting slot b (tries left: A 3, B 0)", phTrialBoot},
		{"[  OK  ] Started pibake-updater.service - pibake: A/B update agent", phHealth},
		{"pibake-updater[288]: level=INFO msg=committed version=2.0.0 slot=b", phCommit},
	}
	for i, c := range console {
		if got := tr.feed(c.line, time.Duration(i)*time.Second); got != c.enters {
			t.Errorf("line %d %q: entered %q, want %q", i, c.line, got, c.enters)
		}
	}
	if ph, into := tr.current(12500*time.Millisecond, false); ph != phCommit || into != 500*time.Millisecond {
		t.Errorf("a cut 0.5 s after the commit line: %s %s in", ph, into)
	}
	if ph, _ := tr.current(20*time.Second, false); ph != phSettled {
		t.Errorf("a cut past the commit's window: %s", ph)
	}
	if d := tr.done[phWrite]; d != 2*time.Second {
		t.Errorf("write lasted %s, want 2s", d)
	}
}

func TestPowerCutStatus(t *testing.T) {
	const committed = `{"booted": "b","boot_state": "order B A","state": {"format": 2,"serials": {"stable": 1},"slots": {"a": {"image": "demo","version": "as flashed","serial": 0},"b": {"image": "demo","version": "2.0.0","serial": 2}},"committed": "b","failed": {"3.0.0": {"version": "3.0.0","stage": "health","check": "http http://127.0.0.1:8099/healthz","reason": "x","at": "2026-01-01T00:00:00Z"}}}}`
	line := "[  99.0] E2E-SOAK version=2.0.0 slot=b root=/dev/vda6 host=soak-007 data=512 marker=abc prov=p status=" + committed
	s, ok := parseSoak(line)
	if !ok || s.version != "2.0.0" || s.slot != "b" || s.data != 512 || s.host != soakHost || s.statusErr != nil {
		t.Fatalf("parsed %+v", s)
	}
	if err := s.verified(); err != nil {
		t.Error(err)
	}
	if err := s.settled("2.0.0", "b", "3.0.0"); err != nil {
		t.Errorf("v3's verdict: %v", err)
	}
	if err := s.settled("2.0.0", "b", ""); err == nil {
		t.Error("v2's verdict accepted a failed release")
	}
	// Slot a booted while the state vouches only for b.
	unvouched := `{"booted": "a","state": {"slots": {"b": {"image": "demo","version": "2.0.0"}},"committed": "b"}}`
	s, _ = parseSoak("E2E-SOAK version=3.0.0 slot=a status=" + unvouched)
	if err := s.verified(); err == nil {
		t.Error("a boot of a slot the state does not vouch for passed")
	}
	// Cut 64 of seed 1207 (2026-12-07): the status v3 printed between its
	// agent's "trial failed" and the reboot into b, which the campaign
	// took for a boot of an unvouched slot. In that window it is not; in
	// any other boot it is.
	failing := `{"booted": "a","boot_state": "BOOT_ORDER=A B BOOT_A_LEFT=0 BOOT_B_LEFT=3","state": {"format": 2,"serials": {"stable": 1},"slots": {"b": {"image": "demo","version": "2.0.0","serial": 1}},"committed": "b","failed": {"3.0.0": {"version": "3.0.0","stage": "health"}}}}`
	s, _ = parseSoak("E2E-SOAK version=3.0.0 slot=a status=" + failing)
	agentLine := `[  100.79] pibake-updater[344]: time=2026-12-07T11:02:38.761Z level=WARN msg="trial failed" version=3.0.0 stage=health check="http http://127.0.0.1:8099/healthz"`
	if v := failingTrial(agentLine); v != "3.0.0" {
		t.Fatalf("failingTrial read %q", v)
	}
	if s.verified() == nil || !s.rollbackWindow("3.0.0") {
		t.Error("the failed trial's status before its reboot: not taken for the rollback window")
	}
	if s.rollbackWindow("") || s.rollbackWindow("2.0.0") {
		t.Error("a slot the state does not vouch for passed without its trial's failure in this boot")
	}
	// The same, as the pending trial.
	trial := `{"booted": "a","state": {"slots": {"b": {"image": "demo","version": "2.0.0"}},"committed": "b","trial": {"slot": "a","release": {"version": "3.0.0"}}}}`
	s, _ = parseSoak("E2E-SOAK version=3.0.0 slot=a status=" + trial)
	if err := s.verified(); err != nil {
		t.Errorf("the trial's boot: %v", err)
	}
	if err := s.settled("3.0.0", "a", ""); err == nil {
		t.Error("a pending trial counted as settled")
	}
}

func TestPowerCutCopy(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("pibake"), 1000)
	f.WriteAt(data, 0)
	f.WriteAt(data, 64<<20)
	f.Truncate(96 << 20)
	f.Close()
	dst := filepath.Join(dir, "dst")
	if err := copyDisk(dst, src, 128<<20); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 128<<20)
	copy(want, data)
	copy(want[64<<20:], data)
	if !bytes.Equal(got, want) {
		t.Error("the copy differs")
	}
}

// Chains: the plan's cuts, grouped; one leg a chain, at most K cuts, at
// most two that can spend a trial's chance (after the others), at most
// one of them before the trial may count its boot, in the story's order,
// numbered in the order they are made; chains of one are the plan as it
// was before chains.
func TestPowerCutChains(t *testing.T) {
	legs := soakLegs()
	if agent.MaxInterrupted < 2 {
		t.Fatalf("agent.MaxInterrupted is %d: one trial-consuming cut a chain may now change the verdict (powercut_chain_test.go)", agent.MaxInterrupted)
	}
	for _, seed := range []int64{1, 7, 42, 1234567} {
		cfg := soakConfig{cuts: 100, chain: 3, seed: seed}
		chains := planChains(legs, cfg)
		flat := planCuts(legs, cfg)
		want := map[string]int{}
		for _, pc := range flat {
			want[fmt.Sprintf("%s/%v", pc.phase, pc.u)]++
		}
		n := 0
		for i, ch := range chains {
			if ch.n != i+1 || len(ch.cuts) == 0 || len(ch.cuts) > 3 {
				t.Fatalf("seed %d chain %d: number %d, %d cuts", seed, i+1, ch.n, len(ch.cuts))
			}
			consuming, unbooted, last := 0, 0, -1
			for j, pc := range ch.cuts {
				n++
				if pc.n != n || pc.chain != ch.n || pc.link != j+1 || pc.leg != ch.leg {
					t.Errorf("seed %d chain %d link %d: cut %d chain %d link %d leg %s", seed, ch.n, j+1, pc.n, pc.chain, pc.link, pc.leg.name)
				}
				if trialConsuming(pc.phase) {
					consuming++
				} else if consuming > 0 {
					t.Errorf("seed %d chain %d: cut %d (%s) after a trial-consuming cut", seed, ch.n, pc.n, pc.phase)
				}
				if maybeUnbooted(pc.phase) {
					unbooted++
				}
				if k := phaseIndex(ch.leg, pc.phase); k < last {
					t.Errorf("seed %d chain %d: cut %d (%s) goes back in the story", seed, ch.n, pc.n, pc.phase)
				} else {
					last = k
				}
				if !contains(ch.leg.aims, pc.phase) {
					t.Errorf("seed %d chain %d (leg %s): cut %d in %s", seed, ch.n, ch.leg.name, pc.n, pc.phase)
				}
				want[fmt.Sprintf("%s/%v", pc.phase, pc.u)]--
			}
			for _, ph := range []string{phDataCreate, phDataGrow, phProvision} {
				k := 0
				for _, pc := range ch.cuts {
					if pc.phase == ph {
						k++
					}
				}
				if k > 1 {
					t.Errorf("seed %d chain %d: %d cuts aimed at %s, which a card goes through once", seed, ch.n, k, ph)
				}
			}
			if consuming > 2 || unbooted > 1 {
				t.Errorf("seed %d chain %d: %d trial-consuming cuts, %d before the trial may count its boot", seed, ch.n, consuming, unbooted)
			}
		}
		if n != 100 {
			t.Errorf("seed %d: %d cuts in the chains, want 100", seed, n)
		}
		for k, v := range want {
			if v != 0 {
				t.Errorf("seed %d: %s: %d more in the plan than in the chains", seed, k, v)
			}
		}
		// Chains pay: fewer leg runs than cuts.
		if len(chains) > 65 {
			t.Errorf("seed %d: 100 cuts in %d chains", seed, len(chains))
		}
		again := planChains(legs, cfg)
		for i, ch := range chains {
			for j, pc := range ch.cuts {
				q := again[i].cuts[j]
				if q.n != pc.n || q.leg != pc.leg || q.phase != pc.phase || q.u != pc.u {
					t.Errorf("seed %d cut %d differs between two plans of the same seed", seed, pc.n)
				}
			}
		}
	}
	// Chains of one: the plan before chains, numbers included.
	cfg := soakConfig{cuts: 40, chain: 1, seed: 7}
	flat := planCuts(legs, cfg)
	for i, ch := range planChains(legs, cfg) {
		pc, old := ch.cuts[0], flat[i]
		if len(ch.cuts) != 1 || pc.n != old.n || pc.leg != old.leg || pc.phase != old.phase || pc.u != old.u {
			t.Errorf("chain %d of one: cut %d %s %s, the plan's %d %s %s", ch.n, pc.n, pc.leg.name, pc.phase, old.n, old.leg.name, old.phase)
		}
	}
	// The sample is made of chains of one whatever PIBAKE_SOAK_CHAIN says.
	if got := len(planChains(legs, soakConfig{cuts: 3, chain: 3, sample: true, seed: 7})); got != 3 {
		t.Errorf("the sample runs %d chains, want 3", got)
	}
}

func TestPowerCutTrialConsuming(t *testing.T) {
	for _, l := range soakLegs() {
		for _, ph := range l.aims {
			trial := l.name == "v2t" || l.name == "v3t"
			if trialConsuming(ph) != trial {
				t.Errorf("leg %s phase %s: trial-consuming %v", l.name, ph, trialConsuming(ph))
			}
		}
	}
}

func TestPowerCutOnly(t *testing.T) {
	l := soakLegs()[2]
	ch := &cutChain{leg: l, cuts: []*plannedCut{{n: 4}, {n: 5}, {n: 6}}}
	for _, c := range []struct {
		only map[int]bool
		want int
	}{{nil, 3}, {map[int]bool{5: true}, 2}, {map[int]bool{4: true}, 1}, {map[int]bool{6: true, 4: true}, 3}, {map[int]bool{9: true}, 0}} {
		if got := len(ch.selected(c.only)); got != c.want {
			t.Errorf("PIBAKE_SOAK_ONLY %v: %d links, want %d", c.only, got, c.want)
		}
	}
	if !ch.anyDone(map[int]bool{6: true}) || ch.anyDone(map[int]bool{3: true, 7: true}) {
		t.Error("anyDone")
	}
}

// The chain's records: a cut is recovered by a verified status line in a
// later run; an unverified one is the last cut's; the chain's problems
// count for each cut; a cut no verified line followed is a brick.
func TestPowerCutSettleChain(t *testing.T) {
	sum := &cutRecord{}
	recs := []*cutRecord{{n: 1}, {n: 2}, {n: 3}}
	attribute(sum, recs, -1, runResult{verifiedLines: 2, unverified: []string{"before any cut"}})
	recs[0].hit = phDownload
	// The run after cut 1 is cut before it printed anything.
	attribute(sum, recs, 0, runResult{})
	recs[1].hit = phWrite
	attribute(sum, recs, 1, runResult{verifiedLines: 1, unverified: []string{"slot a runs 2.0.0"}})
	recs[2].missed = true
	sum.took = 10 * time.Minute
	sum.problems = append(sum.problems, "data: e2fsck -fn: exit 4")
	settleChain(sum, recs)
	if len(sum.problems) != 2 || sum.problems[0] != "unverified: before any cut" {
		t.Errorf("chain problems %q", sum.problems)
	}
	if !recs[0].recovered || !recs[1].recovered || recs[2].recovered {
		t.Errorf("recovered %v %v %v", recs[0].recovered, recs[1].recovered, recs[2].recovered)
	}
	if got := strings.Join(recs[1].problems, "; "); !strings.Contains(got, "unverified: slot a runs 2.0.0") || !strings.Contains(got, "e2fsck") {
		t.Errorf("cut 2's problems: %s", got)
	}
	if got := strings.Join(recs[0].problems, "; "); strings.Contains(got, "unverified: slot a") || strings.Contains(got, "brick") {
		t.Errorf("cut 1's problems: %s", got)
	}
	if recs[0].took != 5*time.Minute || recs[2].took != 0 {
		t.Errorf("shares %s %s", recs[0].took, recs[2].took)
	}
	// A chain whose last cut never came back.
	sum, recs = &cutRecord{took: time.Minute}, []*cutRecord{{n: 1, hit: phArm}}
	attribute(sum, recs, 0, runResult{})
	settleChain(sum, recs)
	if len(recs[0].problems) != 1 || !strings.HasPrefix(recs[0].problems[0], "brick:") {
		t.Errorf("an unrecovered cut: %q", recs[0].problems)
	}
}

func TestPowerCutLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "soak", "ledger.tsv")
	if lines, err := readLedger(path); err != nil || len(lines) != 0 {
		t.Fatalf("a missing ledger: %v %v", lines, err)
	}
	cfg := soakConfig{cuts: 100, chain: 3, seed: 99}
	now := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	recs := []*cutRecord{
		{n: 1, leg: "v2", aimed: phDownload, hit: phDownload, took: 100 * time.Second},
		{n: 2, leg: "v2", aimed: phWrite, hit: phArm, took: 100 * time.Second, problems: []string{"data: e2fsck\tfailed\nbadly"}},
		{n: 3, leg: "v2", aimed: phArm, missed: true},
	}
	if err := appendLedger(path, ledgerLines(recs, cfg, "abc123", now)); err != nil {
		t.Fatal(err)
	}
	other := soakConfig{cuts: 100, chain: 3, seed: 5}
	if err := appendLedger(path, ledgerLines(recs[:1], other, "def456", now)); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(raw), ledgerHeader+"\n") || strings.Count(string(raw), ledgerHeader) != 1 || strings.Count(string(raw), "\n") != 5 {
		t.Errorf("ledger:\n%s", raw)
	}
	lines, err := readLedger(path)
	if err != nil || len(lines) != 4 {
		t.Fatalf("read back: %d lines, %v", len(lines), err)
	}
	if l := lines[1]; l.cut != 2 || l.hit != phArm || l.aimed != phWrite || l.verdict != "data: e2fsck failed badly" || l.seconds != 100 || l.plan != "cuts=100,chain=3" || l.commit != "abc123" || !l.date.Equal(now) {
		t.Errorf("line 2: %+v", l)
	}
	if lines[2].hit != "none" || lines[2].made() {
		t.Errorf("a missed aim: %+v", lines[2])
	}
	if done := doneCuts(lines, 99, "cuts=100,chain=3"); len(done) != 3 || !done[3] {
		t.Errorf("done %v", done)
	}
	if done := doneCuts(lines, 99, "cuts=100,chain=1"); len(done) != 0 {
		t.Errorf("another plan's cuts: %v", done)
	}
	if seed, ok := resumeSeed(lines, "cuts=100,chain=3"); !ok || seed != 5 {
		t.Errorf("resume seed %d %v", seed, ok)
	}
	if _, ok := resumeSeed(lines, "cuts=40,chain=3"); ok {
		t.Error("a seed for a plan the ledger does not hold")
	}
	tot := ledgerTotals(lines)
	for _, want := range []string{"3 cuts made (1 more aimed", "1 with a problem", "5m0s of QEMU", "1m40s a cut", "2 seeds", "arm 1, download 2"} {
		if !strings.Contains(tot, want) {
			t.Errorf("totals lack %q:\n%s", want, tot)
		}
	}
	// A damaged line is named, never skipped.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2026-12-07T02:00:00Z\tabc\tnot-a-seed\n")
	f.Close()
	if _, err := readLedger(path); err == nil || !strings.Contains(err.Error(), path+":6") {
		t.Errorf("a damaged ledger: %v", err)
	}
	if id := planID(soakConfig{cuts: 3, sample: true, chain: 3, only: map[int]bool{2: true}}); id != "sample,only" {
		t.Errorf("plan ID %q", id)
	}
}

// A chain's runs, scripted instead of QEMU: each run carries the next
// cut, the carriers' status lines prove the cuts before them, the run
// that settles ends the chain; a run that settles before its aimed
// phase leaves the remaining cuts unmade.
func TestPowerCutChainRuns(t *testing.T) {
	legs := soakLegs()
	v2 := legs[2]
	cuts := []*plannedCut{{n: 1, chain: 1, link: 1, leg: v2, phase: phDownload, u: 0.5}, {n: 2, chain: 1, link: 2, leg: v2, phase: phWrite, u: 0.5},
		{n: 3, chain: 1, link: 3, leg: v2, phase: phHealth, u: 0.5}}
	settled := &soakStatus{line: "E2E-SOAK version=2.0.0 slot=b"}
	script := []runResult{
		{killed: true, hit: phDownload, done: map[string]time.Duration{phDownload: time.Second}},
		{killed: true, hit: phDownload, verifiedLines: 1}, // aimed at the write, landed early
		{killed: true, hit: phHealth, unverified: []string{"slot b runs 2.0.0, which the agent's state does not vouch for"}},
		{verifiedLines: 3, settled: settled, poweredOff: true},
	}
	var specs []runSpec
	c := &campaign{t: t, dir: t.TempDir(), checkpoints: map[string]string{cpV2Armed: "x"}, est: map[string]time.Duration{}}
	ln := &soakLane{n: 1, card: "card"}
	c.runFn = func(sp runSpec) runResult {
		specs = append(specs, sp)
		r := script[0]
		script = script[1:]
		return r
	}
	sum := &cutRecord{}
	recs := []*cutRecord{{n: 1}, {n: 2}, {n: 3}}
	final := c.legRuns(v2, ln, "chain001", cuts, sum, recs)
	if final != settled || sum.runs != 4 || len(sum.problems) != 0 {
		t.Fatalf("final %v, %d runs, problems %q", final, sum.runs, sum.problems)
	}
	for i, sp := range specs {
		want := (*plannedCut)(nil)
		if i < 3 {
			want = cuts[i]
		}
		if sp.cut != want || sp.harvest {
			t.Errorf("run %d carries cut %v, harvest %v", i, sp.cut, sp.harvest)
		}
	}
	if specs[1].delay != 15*time.Second || specs[0].delay != time.Duration(0.5*float64(defaultLength[phDownload])) {
		t.Errorf("delays %s %s", specs[0].delay, specs[1].delay)
	}
	if !recs[0].recovered || !recs[1].recovered || !recs[2].recovered || recs[1].hit != phDownload || recs[2].hit != phHealth {
		t.Errorf("records %+v %+v %+v", recs[0], recs[1], recs[2])
	}
	// The third run's status lines came before its own cut: the second
	// cut's boot.
	if len(recs[1].problems) != 1 || !strings.HasPrefix(recs[1].problems[0], "unverified:") || len(recs[2].problems) != 0 {
		t.Errorf("problems %q %q", recs[1].problems, recs[2].problems)
	}
	// Settled before the second cut's phase began.
	script = []runResult{{killed: true, hit: phArm}, {verifiedLines: 1, settled: settled, missed: true}}
	specs = nil
	recs = []*cutRecord{{n: 1}, {n: 2}, {n: 3}}
	if final := c.legRuns(v2, ln, "chain002", cuts, &cutRecord{}, recs); final != settled {
		t.Fatal("not settled")
	}
	if recs[0].missed || !recs[1].missed || !recs[2].missed || recs[1].hit != "" {
		t.Errorf("missed %v %v %v", recs[0].missed, recs[1].missed, recs[2].missed)
	}
	// A run that never reports: the chain's problem, a brick.
	script = []runResult{{killed: true, hit: phWrite}, {err: errors.New("no verdict after 20m0s")}}
	sum, recs = &cutRecord{}, []*cutRecord{{n: 1}}
	if final := c.legRuns(v2, ln, "chain003", cuts[:1], sum, recs); final != nil || len(sum.problems) != 1 || !strings.HasPrefix(sum.problems[0], "brick:") {
		t.Errorf("a device that never reported: %v %q", final, sum.problems)
	}
	// After a trial-consuming cut the carrier follows the retry of the
	// trial, not the install.
	trialCuts := []*plannedCut{cuts[0], {n: 2, leg: v2, phase: phHealth, u: 0.5}, {n: 3, leg: v2, phase: phCommit, u: 0.5}}
	script = []runResult{{killed: true, hit: phDownload}, {killed: true, hit: phHealth}, {killed: true, hit: phCommit}, {settled: settled}}
	specs = nil
	c.legRuns(v2, ln, "chain005", trialCuts, &cutRecord{}, []*cutRecord{{n: 1}, {n: 2}, {n: 3}})
	if specs[1].phases != nil || len(specs[2].phases) != len(retryPhases(v2)) || len(specs[3].phases) != len(retryPhases(v2)) {
		t.Errorf("carrier phases: %d %d %d", len(specs[1].phases), len(specs[2].phases), len(specs[3].phases))
	}
	// An install chain whose second cut landed in the trial: no mid
	// checkpoint after it, and the third cut (aimed at arm) is aimed in
	// the trial's retry, where it never comes.
	delete(c.checkpoints, cpV2Armed)
	install := []*plannedCut{cuts[0], cuts[1], {n: 3, leg: v2, phase: phArm, u: 0.5}}
	script = []runResult{{killed: true, hit: phDownload}, {killed: true, hit: phTrialBoot}, {settled: settled, missed: true}}
	specs, recs = nil, []*cutRecord{{n: 1}, {n: 2}, {n: 3}}
	c.legRuns(v2, ln, "chain006", install, &cutRecord{}, recs)
	if !specs[1].harvest || specs[2].harvest || len(specs[2].phases) != len(retryPhases(v2)) || !recs[2].missed {
		t.Errorf("after a cut that landed in the trial: harvest %v then %v, %d phases, missed %v", specs[1].harvest, specs[2].harvest, len(specs[2].phases), recs[2].missed)
	}
	// Without the mid checkpoint, a chain with no trial-consuming cut
	// may make it, one with one may not.
	delete(c.checkpoints, cpV2Armed)
	for _, chain := range [][]*plannedCut{cuts[:2], cuts} {
		script = []runResult{{killed: true, hit: phDownload}, {killed: true, hit: phWrite}, {killed: true, hit: phHealth}}[:len(chain)]
		script = append(script, runResult{settled: settled})
		specs, recs = nil, nil
		for _, pc := range chain {
			recs = append(recs, &cutRecord{n: pc.n})
		}
		c.legRuns(v2, ln, "chain004", chain, &cutRecord{}, recs)
		if got, want := specs[len(specs)-1].harvest, len(chain) == 2; got != want {
			t.Errorf("%d cuts: harvest %v", len(chain), got)
		}
	}
	if aimedPairs(legs) != 17 {
		t.Errorf("%d (leg, phase) pairs", aimedPairs(legs))
	}
}
