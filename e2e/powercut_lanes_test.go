package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Lanes: the campaign's chains are independent units of work (each
// starts from a checkpoint's copy and ends with its own checks), so
// PIBAKE_SOAK_LANES runs that many at once, each lane a QEMU guest of its
// own (PIBAKE_SOAK_SMP vCPUs; vm's default 2). A lane owns its card
// (card-laneN.img, and its data partition's copy for e2fsck) and its
// update server with the relays the guest reaches it by: what the
// server offers and its power-off switch belong to one run. The name
// server answers the same to every lane and is shared. The lanes take
// the plan's chains in its order, the next not begun, and none is begun
// once PIBAKE_SOAK_FOR is spent; what the chains share is guarded in
// campaign (records, counters, measured lengths, checkpoints; one
// calibration at a time), console logs are named by chain, and the
// ledger is appended under a lock (appendLedger). Cut and chain numbers
// are the plan's, whatever order the lanes finish in, and the report
// lists the cuts by number. On the 2-core machine two lanes made 26.6
// cuts an hour, one lane 17 (docs/building.md).

// soakLane is what one chain at a time uses alone.
type soakLane struct {
	n    int
	card string
	srv  *soakServer
	cmds map[string]string // the guest's relays: the update server (this lane's), the name server
}

// startLanes makes the campaign's lanes: their cards' names, servers and
// relays.
func (c *campaign) startLanes() {
	t := c.t
	dns := serveDNS(t, map[string]string{serverName: serverAddr})
	for i := 1; i <= c.cfg.laneCount(); i++ {
		srv, stop, err := startSoakServer()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		c.lanes = append(c.lanes, &soakLane{n: i, card: laneCard(c.dir, i), srv: srv,
			cmds: map[string]string{serverAddr + ":8080": guestRelay(t, srv.addr), guestDNS: guestRelay(t, dns.addr)}})
	}
}

func laneCard(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("card-lane%d.img", n))
}

// runLanes runs the chains (each its cuts) in the campaign's lanes, each
// lane taking the next chain not begun, in order, while PIBAKE_SOAK_FOR
// lasts. It returns the first chain no lane began (nil: all were).
func (c *campaign) runLanes(chains [][]*plannedCut) []*plannedCut {
	var mu sync.Mutex
	next := 0
	var left []*plannedCut
	take := func() []*plannedCut {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case next >= len(chains) || left != nil:
			return nil
		case c.spent():
			left = chains[next]
			return nil
		}
		next++
		return chains[next-1]
	}
	var wg sync.WaitGroup
	for _, ln := range c.lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cuts := take(); cuts != nil; cuts = take() {
				c.runChain(ln, cuts)
			}
		}()
	}
	wg.Wait()
	return left
}

// sortRecords puts the records in the cuts' order (lanes finish chains
// in any order).
func (c *campaign) sortRecords() {
	c.mu.Lock()
	defer c.mu.Unlock()
	sort.SliceStable(c.records, func(i, j int) bool { return c.records[i].n < c.records[j].n })
}

// Appends from several chains at once (lanes), or from two make soak
// runs sharing the ledger: one header, every line whole.
func TestPowerCutLedgerConcurrent(t *testing.T) {
	cfg := soakConfig{cuts: 100, chain: 3, seed: 11}
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	for try := 0; try < 20; try++ {
		path := filepath.Join(t.TempDir(), "ledger.tsv")
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				recs := []*cutRecord{{n: 3*g + 1, leg: "v2", aimed: phDownload, hit: phWrite, took: time.Minute,
					problems: []string{strings.Repeat("long verdict ", 400)}}, {n: 3*g + 2, leg: "v2", aimed: phWrite, hit: phArm}}
				if err := appendLedger(path, ledgerLines(recs, cfg, "abc", now)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(raw), ledgerHeader); n != 1 {
			t.Fatalf("try %d: %d headers in the ledger", try, n)
		}
		lines, err := readLedger(path)
		if err != nil || len(lines) != 16 {
			t.Fatalf("try %d: %d lines, %v", try, len(lines), err)
		}
		if done := doneCuts(lines, 11, planID(cfg)); len(done) != 16 {
			t.Fatalf("try %d: cuts %v", try, done)
		}
	}

}

// script is a campaign whose QEMU runs and final checks are scripted:
// a cut lands in its aimed phase (one aimed at the trial's U-Boot in its
// boot, so that the covering cuts run too), a harvest stops, a run
// without a cut settles, the final checks pass. Each run takes a small
// random time; two runs on one card at once fail the test.
type script struct {
	mu      sync.Mutex
	carried map[int]int    // cut → runs that carried it
	busy    map[string]int // card → runs on it now
	running int            // runs now, and the most at once
	most    int
	begun   int // chains begun (their first run)
}

func scriptedCampaign(t *testing.T, cfg soakConfig, ledger string) (*campaign, *script) {
	dir := t.TempDir()
	c0 := filepath.Join(dir, cpFlashed+".img")
	if err := os.WriteFile(c0, []byte("the card as flashed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &campaign{t: t, cfg: cfg, dir: dir, legs: soakLegs(), repos: map[string]string{"": ""}, checkpoints: map[string]string{cpFlashed: c0},
		est: map[string]time.Duration{}, ledger: ledger, commit: "scripted", started: time.Now()}
	for i := 1; i <= cfg.laneCount(); i++ {
		c.lanes = append(c.lanes, &soakLane{n: i, card: laneCard(dir, i)})
	}
	s := &script{carried: map[int]int{}, busy: map[string]int{}}
	c.runFn = func(sp runSpec) runResult {
		s.mu.Lock()
		if s.busy[sp.disk]++; s.busy[sp.disk] > 1 {
			t.Errorf("%s: another run is on card %s", sp.name, sp.disk)
		}
		s.running++
		s.most = max(s.most, s.running)
		if strings.HasPrefix(sp.name, "chain") && strings.HasSuffix(sp.name, "-run0") {
			s.begun++
		}
		if sp.cut != nil {
			s.carried[sp.cut.n]++
		}
		s.mu.Unlock()
		time.Sleep(time.Duration(rand.Intn(2000)) * time.Microsecond)
		s.mu.Lock()
		s.busy[sp.disk]--
		s.running--
		s.mu.Unlock()
		r := runResult{log: filepath.Join(dir, sp.name+".log"), verifiedLines: 1}
		switch {
		case sp.cut != nil:
			r.killed, r.hit = true, sp.cut.phase
			if r.hit == phTrialUBoot {
				r.hit = phTrialBoot
			}
		case sp.harvest:
			r.harvested = true
		default:
			r.settled, r.poweredOff = &soakStatus{line: "E2E-SOAK " + sp.leg.name}, true
		}
		return r
	}
	c.checkFn = func(*leg, soakStatus, string, string) []string { return nil }
	return c, s
}

// outcome is what a run of the plan said about each cut, in cut order.
func (c *campaign) outcome() []string {
	c.sortRecords()
	var out []string
	for _, r := range c.records {
		out = append(out, fmt.Sprintf("cut %d chain %d.%d %s aimed %s hit %s missed %v recovered %v problems %q",
			r.n, r.chain, r.link, r.leg, r.aimed, r.hit, r.missed, r.recovered, r.problems))
	}
	return out
}

// ledgerOutcome is the ledger's lines without their dates and times, in
// cut order; each cut once.
func ledgerOutcome(t *testing.T, path string) []string {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), ledgerHeader); n != 1 {
		t.Errorf("%d headers in the ledger", n)
	}
	lines, err := readLedger(path) // a line cut in two fails to parse
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	var out []string
	for _, l := range lines {
		if seen[l.cut] {
			t.Errorf("cut %d twice in the ledger", l.cut)
		}
		seen[l.cut] = true
		out = append(out, fmt.Sprintf("%d %s %s %s %s %s", l.cut, l.plan, l.leg, l.aimed, l.hit, l.verdict))
	}
	sort.Slice(out, func(i, j int) bool {
		var a, b int
		fmt.Sscan(out[i], &a)
		fmt.Sscan(out[j], &b)
		return a < b
	})
	return out
}

// The same plan in one lane and in two (under go test -race): every
// planned cut is carried by exactly one run, no card is run on twice at
// once, the ledger holds every cut once in whole lines, and the records
// and the ledger say the same as in one lane.
func TestPowerCutLanes(t *testing.T) {
	cfg := soakConfig{cuts: 40, chain: 3, seed: 1207}
	plan := planChains(soakLegs(), cfg)
	var outs, ledgers [2][]string
	for i, lanes := range []int{1, 2} {
		cfg.lanes = lanes
		ledger := filepath.Join(t.TempDir(), "ledger.tsv")
		c, s := scriptedCampaign(t, cfg, ledger)
		c.runPlan(planChains(c.legs, cfg), nil)
		for _, ch := range plan {
			for _, pc := range ch.cuts {
				if s.carried[pc.n] != 1 {
					t.Errorf("%d lanes: cut %d carried by %d runs", lanes, pc.n, s.carried[pc.n])
				}
			}
		}
		if len(s.carried) != 42 || s.carried[41] != 1 || s.carried[42] != 1 {
			t.Errorf("%d lanes: %d cuts made, want the plan's 40 and 2 covering the trial's U-Boot: %v", lanes, len(s.carried), s.carried)
		}
		if s.most != lanes {
			t.Errorf("%d lanes: at most %d runs at once", lanes, s.most)
		}
		outs[i], ledgers[i] = c.outcome(), ledgerOutcome(t, ledger)
		if len(outs[i]) != 42 || len(ledgers[i]) != 42 {
			t.Errorf("%d lanes: %d records, %d ledger lines", lanes, len(outs[i]), len(ledgers[i]))
		}
	}
	for k := range outs[0] {
		if k >= len(outs[1]) || outs[0][k] != outs[1][k] {
			t.Errorf("one lane: %s\ntwo lanes: %v", outs[0][k], outs[1][k:min(k+1, len(outs[1]))])
		}
	}
	if strings.Join(ledgers[0], "\n") != strings.Join(ledgers[1], "\n") {
		t.Errorf("the ledgers differ:\none lane:\n%s\ntwo lanes:\n%s", strings.Join(ledgers[0], "\n"), strings.Join(ledgers[1], "\n"))
	}
}

// PIBAKE_SOAK_FOR in two lanes: once it is spent no lane begins a chain,
// the ledger holds whole chains, and PIBAKE_SOAK_RESUME's run makes the
// rest, each cut once in all.
func TestPowerCutLanesBudget(t *testing.T) {
	cfg := soakConfig{cuts: 40, chain: 3, seed: 1207, lanes: 2, budget: 35 * time.Second}
	ledger := filepath.Join(t.TempDir(), "ledger.tsv")
	c, s := scriptedCampaign(t, cfg, ledger)
	// The clock moves 10 s as a chain begins: spent once four have.
	c.now = func() time.Time {
		s.mu.Lock()
		defer s.mu.Unlock()
		return c.started.Add(time.Duration(s.begun) * 10 * time.Second)
	}
	chains := planChains(c.legs, cfg)
	c.runPlan(chains, nil)
	if s.begun < 4 || s.begun > 5 {
		t.Errorf("%d chains begun in a budget spent after the fourth (the other lane may take one as it is spent)", s.begun)
	}
	lines, err := readLedger(ledger)
	if err != nil {
		t.Fatal(err)
	}
	done := doneCuts(lines, cfg.seed, planID(cfg))
	for _, ch := range chains {
		k := 0
		for _, pc := range ch.cuts {
			if done[pc.n] {
				k++
			}
		}
		if k != 0 && k != len(ch.cuts) {
			t.Errorf("chain %d: %d of its %d cuts in the ledger", ch.n, k, len(ch.cuts))
		}
	}
	cfg.budget = 0
	c2, s2 := scriptedCampaign(t, cfg, ledger)
	c2.runPlan(planChains(c2.legs, cfg), done)
	for n := range s2.carried {
		if s.carried[n] > 0 {
			t.Errorf("cut %d made again after the resume", n)
		}
	}
	if got := ledgerOutcome(t, ledger); len(got) != 42 {
		t.Errorf("%d cuts in the ledger after the resume, want 42", len(got))
	}
}

// PIBAKE_SOAK_FROM: the chains before it are not run, every cut of the
// ones from it is, once, with the plan's own numbers (the ledger then
// resumes the same plan); covering cuts come after the plan's numbers.
func TestPowerCutFrom(t *testing.T) {
	cfg := soakConfig{cuts: 40, chain: 3, seed: 1207, lanes: 2, from: 5}
	ledger := filepath.Join(t.TempDir(), "ledger.tsv")
	c, s := scriptedCampaign(t, cfg, ledger)
	chains := planChains(c.legs, cfg)
	c.runPlan(chains, nil)
	for _, ch := range chains {
		for _, pc := range ch.cuts {
			want := 1
			if ch.n < cfg.from {
				want = 0
			}
			if s.carried[pc.n] != want {
				t.Errorf("chain %d, cut %d: carried by %d runs, want %d", ch.n, pc.n, s.carried[pc.n], want)
			}
		}
	}
	lines, err := readLedger(ledger)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if l.plan != planID(cfg) {
			t.Errorf("cut %d in the ledger under plan %q, want %q (resumable)", l.cut, l.plan, planID(cfg))
		}
	}
	if len(lines) == 0 {
		t.Error("nothing in the ledger")
	}
}
