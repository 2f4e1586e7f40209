package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
)

// TestPowerCut is the power-cut campaign: real power cuts (QEMU killed,
// see powercut_run_test.go) at random moments of the update story on the
// qemu board, in every phase of it (powercut_legs_test.go). After each
// cut QEMU starts again on the same card until the device settles; then
// it must run a slot whose partitions hold the signed artifacts of the
// release it should run, have settled on that release's verdict (v2
// committed; v3 failed at its health check and rolled back to v2), have
// never booted a slot its state does not vouch for, and, once powered off,
// its data partition must pass e2fsck -fn and hold the application file
// written before the first update, byte for byte.
//
// PIBAKE_SOAK_SAMPLE=1 runs a sample of three cuts: one in the first boot
// (data partition creation, provisioning), one while v2 is installed, one
// in v2's trial (17 min 30 s on a loaded 2-core machine). make test
// makes one cut instead, inside TestUpdate (storyCut), for the price of
// one boot. make soak runs PIBAKE_SOAK_CUTS of them over every phase, in
// chains of PIBAKE_SOAK_CHAIN (default 3) cuts a leg run
// (powercut_chain_test.go); PIBAKE_SOAK_SEED replays a campaign (with the
// same PIBAKE_SOAK_CUTS and PIBAKE_SOAK_CHAIN), PIBAKE_SOAK_ONLY (cut
// numbers) only the chains that hold those cuts, up to the last one
// named. Every finished cut goes to the ledger (powercut_ledger_test.go);
// PIBAKE_SOAK_RESUME=1 goes on with the ledger's last plan (or
// PIBAKE_SOAK_SEED's), skipping the chains it holds, and PIBAKE_SOAK_FOR
// (a duration) starts no chain after that much time; PIBAKE_SOAK_FROM=N
// begins the plan at its chain N (the chains before it were made on a
// machine whose ledger is not this one's). PIBAKE_SOAK_LANES
// runs that many chains at once (powercut_lanes_test.go), PIBAKE_SOAK_SMP
// gives each guest that many vCPUs.
func TestPowerCut(t *testing.T) {
	needE2E(t)
	if os.Getenv("PIBAKE_SOAK_CUTS") == "" && os.Getenv("PIBAKE_SOAK_SAMPLE") == "" {
		t.Skip("the power-cut campaign runs under make soak (PIBAKE_SOAK_CUTS=N) or PIBAKE_SOAK_SAMPLE=1")
	}
	story(t, laneUpdate)
	cfg := soakConfigFromEnv(t)
	ledger, err := ledgerPath()
	if err != nil {
		t.Fatal(err)
	}
	done := resumeFrom(t, &cfg, ledger)
	defer printLedgerTotals(t, ledger)
	msg := fmt.Sprintf("power-cut campaign: %d cuts in chains of %d, %d lanes, PIBAKE_SOAK_SEED=%d replays it; ledger %s", cfg.cuts, cfg.chainLen(), cfg.laneCount(), cfg.seed, ledger)
	t.Log(msg)
	fmt.Fprintln(os.Stderr, msg)
	c := newCampaign(t, cfg)
	c.ledger, c.commit = ledger, gitCommit()
	if twoLanes {
		// story took laneUpdate; the guest keeps both cores busy, so
		// the other lane too now the releases are built. In a serial
		// run every story uses laneUpdate, which story holds: there is
		// nothing else to lock (locking the held lane again once hung
		// the campaign for ever).
		lanes[laneEdge].Lock()
		defer lanes[laneEdge].Unlock()
	}
	c.runPlan(planChains(c.legs, cfg), done)
	c.report()
}

// runPlan runs the plan's chains the ledger does not hold (done), in
// the campaign's lanes, then the cuts that cover the phases no cut has
// hit yet.
func (c *campaign) runPlan(chains []*cutChain, done map[int]bool) {
	var todo [][]*plannedCut
	for _, ch := range chains {
		if ch.n < c.cfg.from {
			continue // made on another machine, whose ledger is not here
		}
		if cuts := ch.selected(c.cfg.only); len(cuts) > 0 && !ch.anyDone(done) {
			todo = append(todo, cuts)
		}
	}
	if c.cfg.from > 1 {
		c.t.Logf("PIBAKE_SOAK_FROM=%d: chains 1 to %d of the plan are left out (made elsewhere)", c.cfg.from, c.cfg.from-1)
	}
	if left := c.runLanes(todo); left != nil {
		c.t.Logf("PIBAKE_SOAK_FOR=%s spent: chain %d and the ones after it are left for PIBAKE_SOAK_RESUME=1", c.cfg.budget, left[0].chain)
		return
	}
	if !c.cfg.sample && len(c.cfg.only) == 0 && c.cfg.cuts >= aimedPairs(c.legs) {
		c.coverFromLedger(chains)
	}
}

// aimedPairs is the number of (leg, phase) pairs the plan aims at: a plan
// of fewer cuts cannot aim at every phase and is not completed by
// covering cuts (a short run, such as a check that chains work).
func aimedPairs(legs []*leg) int {
	n := 0
	for _, l := range legs {
		n += len(l.aims)
	}
	return n
}

// printLedgerTotals prints the ledger's totals (make soak's last words).
func printLedgerTotals(t *testing.T, path string) {
	lines, err := readLedger(path)
	if err != nil {
		t.Error(err)
		return
	}
	msg := ledgerTotals(lines) + "\n(" + path + ")"
	t.Log(msg)
	fmt.Fprintln(os.Stderr, msg)
}

// resumeFrom applies PIBAKE_SOAK_RESUME: the seed of the ledger's last
// line of the same plan (unless PIBAKE_SOAK_SEED names one), and the cut
// numbers the ledger already holds for it.
func resumeFrom(t *testing.T, cfg *soakConfig, ledger string) map[int]bool {
	if !cfg.resume {
		return nil
	}
	lines, err := readLedger(ledger)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.seedSet {
		if seed, ok := resumeSeed(lines, planID(*cfg)); ok {
			cfg.seed = seed
		}
	}
	done := doneCuts(lines, cfg.seed, planID(*cfg))
	t.Logf("PIBAKE_SOAK_RESUME: seed %d, plan %s: the ledger holds %d of its cuts", cfg.seed, planID(*cfg), len(done))
	return done
}

// soakConfig is the campaign's settings, from the environment.
type soakConfig struct {
	cuts    int
	chain   int // cuts a chain at most (PIBAKE_SOAK_CHAIN)
	seed    int64
	seedSet bool
	sample  bool         // PIBAKE_SOAK_CUTS unset: make test's sample
	only    map[int]bool // PIBAKE_SOAK_ONLY
	keep    bool         // PIBAKE_SOAK_KEEP: keep the cards
	resume  bool         // PIBAKE_SOAK_RESUME
	from    int          // PIBAKE_SOAK_FROM: the plan's first chain to run
	budget  time.Duration
	lanes   int // chains run at once (PIBAKE_SOAK_LANES; 0: 1)
	smp     int // each guest's vCPUs (PIBAKE_SOAK_SMP; 0: vm's default)
}

// laneCount is the number of lanes: at least 1.
func (cfg soakConfig) laneCount() int { return max(cfg.lanes, 1) }

// chainLen is the chains' length: 1 for the sample (one cut a leg).
func (cfg soakConfig) chainLen() int {
	if cfg.sample || cfg.chain < 1 {
		return 1
	}
	return cfg.chain
}

func soakConfigFromEnv(t *testing.T) soakConfig {
	cfg := soakConfig{cuts: 3, chain: 3, sample: true, seed: time.Now().UnixNano() % 1e9, only: map[int]bool{}}
	num := func(name string) int {
		s := os.Getenv(name)
		if s == "" {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a number of at least 1", name, s)
		}
		return n
	}
	if n := num("PIBAKE_SOAK_CUTS"); n > 0 {
		cfg.cuts, cfg.sample = n, false
	}
	if n := num("PIBAKE_SOAK_CHAIN"); n > 0 {
		cfg.chain = n
	}
	cfg.lanes, cfg.smp = num("PIBAKE_SOAK_LANES"), num("PIBAKE_SOAK_SMP")
	cfg.from = num("PIBAKE_SOAK_FROM")
	if s := os.Getenv("PIBAKE_SOAK_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("PIBAKE_SOAK_SEED=%q: want a number", s)
		}
		cfg.seed, cfg.seedSet = n, true
	}
	for _, f := range strings.FieldsFunc(os.Getenv("PIBAKE_SOAK_ONLY"), func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("PIBAKE_SOAK_ONLY=%q: want cut numbers", os.Getenv("PIBAKE_SOAK_ONLY"))
		}
		cfg.only[n] = true
	}
	if s := os.Getenv("PIBAKE_SOAK_FOR"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("PIBAKE_SOAK_FOR=%q: want a duration (90m, 2h)", s)
		}
		cfg.budget = d
	}
	cfg.keep = os.Getenv("PIBAKE_SOAK_KEEP") != ""
	cfg.resume = os.Getenv("PIBAKE_SOAK_RESUME") != ""
	return cfg
}

// The provisioning of the first boot, and what the data checks expect.
const (
	soakHost   = "soak-007"
	soakSecret = "E2E-soak-passphrase-91c3"
	soakProv   = "soak-provisioned-5e1b"
	badCheck   = "http http://127.0.0.1:8099/healthz"
)

const soakProvisionFile = `hostname: ` + soakHost + `
wifi:
  country: FR
  networks:
    - ssid: soak-shop
      passphrase: "` + soakSecret + `"
files:
  - path: provisioned/soak
    content: "` + soakProv + `\n"
`

// soakRelease is one of the story's builds and its signed document.
type soakRelease struct {
	img string
	doc *channel.Document
}

// campaign holds what the cuts share: the builds, their repositories,
// the lanes (each with its card and server), the checkpoints, the
// phases' measured lengths, the records. The lanes' chains run at once:
// mu guards what they write (below it), cpMu makes one checkpoint at a
// time, ensureMu runs one calibration at a time.
type campaign struct {
	t        *testing.T
	cfg      soakConfig
	dir      string
	legs     []*leg
	lanes    []*soakLane
	releases map[string]*soakRelease
	repos    map[string]string // version offered → repository
	ledger   string            // the ledger's path ("" none)
	commit   string
	started  time.Time
	runFn    func(runSpec) runResult // the QEMU runs, if not c.run (the unit tests' script)
	// checkFn is the final checks of a chain's card, if not checkFinal
	// and checkDisk (the unit tests' script).
	checkFn  func(l *leg, final soakStatus, disk, keep string) []string
	now      func() time.Time // PIBAKE_SOAK_FOR's clock, if not time.Now
	cpMu     sync.Mutex
	ensureMu sync.Mutex

	mu          sync.Mutex
	checkpoints map[string]string
	dataV1      int64 // the data filesystem's size at C1
	est         map[string]time.Duration
	records     []*cutRecord
	calibration []*cutRecord // legs run without a cut to make checkpoints
	kept        int
	chains      int // chains run
}

// newCampaign builds v1, v2 and v3, publishes them, and makes C0.
func newCampaign(t *testing.T, cfg soakConfig) *campaign {
	dir, err := os.MkdirTemp("", "pibake-e2e-soak-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("power-cut campaign: console logs and records in %s", dir)
	c := &campaign{t: t, cfg: cfg, dir: dir, legs: soakLegs(), releases: map[string]*soakRelease{}, repos: map[string]string{"": ""},
		checkpoints: map[string]string{}, est: map[string]time.Duration{}}
	t.Cleanup(c.cleanup)
	c.build()
	c.startLanes()
	c0 := filepath.Join(dir, cpFlashed+".img")
	if err := copyDisk(c0, c.releases["1.0.0"].img, 0); err != nil {
		t.Fatal(err)
	}
	// A card 256 MiB bigger than the image: the first boot grows the
	// data partition to its end.
	if err := os.Truncate(c0, fileSize(t, c0)+256<<20); err != nil {
		t.Fatal(err)
	}
	editCmdline(t, c0, "qemu")
	putBootsel(t, c0, map[string]string{provision.FileName: soakProvisionFile})
	c.checkpoints[cpFlashed] = c0
	c.started = time.Now()
	return c
}

// build makes the three releases: v1 (flashed), v2 (good), v3 (its
// health check cannot pass: nothing listens on 8099), each with the
// e2e-soak unit, and the repositories that offer v2 and v3.
func (c *campaign) build() {
	t := c.t
	keys := t.TempDir()
	if _, _, err := channel.GenerateKeyFiles(keys, "fleet", ""); err != nil {
		t.Fatal(err)
	}
	updater := func(health string) string {
		return "server: http://" + serverName + ":8080\nchannel: stable\nkeys: [keys/fleet.pub]\npoll: 1m\nhealth:\n" + health
	}
	good := updater("  deadline: 3m\n  units: [demo-hello.service]\n")
	bad := updater("  deadline: 45s\n  http:\n    - url: http://127.0.0.1:8099/healthz\n")
	versions := []struct{ version, updater string }{{"1.0.0", good}, {"2.0.0", good}, {"3.0.0", bad}}
	if c.cfg.sample {
		versions = versions[:2] // the sample's cuts end with v2
	}
	for _, v := range versions {
		img, err := buildVariant(t, variant{version: v.version, hello: v.version, overlay: "e2e-soak", service: "e2e-soak", updater: v.updater, keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(filepath.Dir(filepath.Dir(img))) })
		c.releases[v.version] = &soakRelease{img: img}
	}
	key, err := channel.LoadPrivateKey(filepath.Join(keys, "fleet.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	pub := func(repo, version string) {
		res, err := publish.Publish(context.Background(), publish.Options{Repo: repo, Channel: "stable", Build: filepath.Dir(c.releases[version].img),
			Key: key, Expires: 30 * 24 * time.Hour, Rollout: 1, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		c.releases[version].doc = res.Document
	}
	// v1 is never offered: its document is only what slot a must hold.
	pub(t.TempDir(), "1.0.0")
	c.repos["2.0.0"] = t.TempDir()
	pub(c.repos["2.0.0"], "2.0.0")
	if c.releases["3.0.0"] != nil {
		c.repos["3.0.0"] = t.TempDir()
		pub(c.repos["3.0.0"], "2.0.0")
		pub(c.repos["3.0.0"], "3.0.0")
	}
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// cleanup removes the cards, keeping the console logs and the records;
// make test's sample keeps nothing when it passed.
func (c *campaign) cleanup() {
	if c.cfg.keep {
		return
	}
	if c.cfg.sample && !c.t.Failed() {
		os.RemoveAll(c.dir)
		return
	}
	for _, p := range c.checkpoints {
		os.Remove(p)
	}
	for _, ln := range c.lanes {
		os.Remove(ln.card)
	}
}

// plannedCut is one cut of the plan: in which leg, aimed at which phase,
// and where in it (u: a fraction of the phase's measured length).
type plannedCut struct {
	n     int
	chain int // the chain it is made in, and its place there
	link  int
	leg   *leg
	phase string
	u     float64
}

// planCuts draws the campaign from the seed: every (leg, phase) pair in
// a shuffled order, again and again, or for the sample one pair from the
// first boot, one from v2's install, one from v2's trial. The cuts run in the story's order (each leg's checkpoint is made
// once) and are numbered in that order.
func planCuts(legs []*leg, cfg soakConfig) []*plannedCut {
	rng := rand.New(rand.NewSource(cfg.seed))
	type pair struct {
		leg   *leg
		phase string
	}
	byLeg := map[string][]pair{}
	var all []pair
	for _, l := range legs {
		for _, ph := range l.aims {
			byLeg[l.name] = append(byLeg[l.name], pair{l, ph})
			all = append(all, pair{l, ph})
		}
	}
	var picks []pair
	if cfg.sample {
		for _, group := range [][]string{{"first"}, {"v2"}, {"v2t"}} {
			var ps []pair
			for _, g := range group {
				ps = append(ps, byLeg[g]...)
			}
			picks = append(picks, ps[rng.Intn(len(ps))])
		}
	}
	for len(picks) < cfg.cuts {
		for _, i := range rng.Perm(len(all)) {
			if len(picks) < cfg.cuts {
				picks = append(picks, all[i])
			}
		}
	}
	plan := make([]*plannedCut, len(picks))
	for i, p := range picks {
		plan[i] = &plannedCut{leg: p.leg, phase: p.phase, u: rng.Float64()}
	}
	order := map[*leg]int{}
	for i, l := range legs {
		order[l] = i
	}
	sort.SliceStable(plan, func(i, j int) bool { return order[plan[i].leg] < order[plan[j].leg] })
	for i, pc := range plan {
		pc.n = i + 1
	}
	return plan
}

// coverFromLedger aims more cuts at each phase no cut of this plan has
// landed in yet, in this run or (resumed) in the ledger: a cut lands in
// the phase the console shows when it is made, not always the one aimed
// at (the phases' lengths vary). Two tries a phase, one cut a chain,
// numbered after the plan's and the ledger's cuts; they are drawn from
// seed+1 and what was hit, so PIBAKE_SOAK_ONLY does not replay them.
func (c *campaign) coverFromLedger(chains []*cutChain) {
	ledgerHit, n := map[string]int{}, 0
	for _, ch := range chains {
		n += len(ch.cuts)
	}
	if c.ledger != "" {
		lines, err := readLedger(c.ledger)
		if err != nil {
			c.t.Error(err)
			return
		}
		for _, l := range lines {
			if l.seed == c.cfg.seed && l.plan == planID(c.cfg) {
				n = max(n, l.cut)
				if l.made() && !c.ranCut(l.cut) {
					ledgerHit[l.hit]++
				}
			}
		}
	}
	c.cover(rand.New(rand.NewSource(c.cfg.seed+1)), ledgerHit, n, len(chains))
}

// ranCut says whether cut n was made in this run (its record is in
// c.records, and in the ledger too).
func (c *campaign) ranCut(n int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.records {
		if r.n == n {
			return true
		}
	}
	return false
}

// cover makes the covering cuts, numbered from n+1, each a chain of its
// own numbered after the plan's ch chains, a try's cuts in the lanes;
// before counts the hits of the ledger's earlier sessions.
func (c *campaign) cover(rng *rand.Rand, before map[string]int, n, ch int) {
	for try := 0; try < 2; try++ {
		hit := c.hits()
		for ph, k := range before {
			hit[ph] += k
		}
		var chains [][]*plannedCut
		for _, l := range c.legs {
			for _, ph := range l.aims {
				if hit[ph] > 0 {
					continue
				}
				n++
				hit[ph]++ // one more cut a phase per try
				ch++
				chains = append(chains, []*plannedCut{{n: n, chain: ch, link: 1, leg: l, phase: ph, u: rng.Float64()}})
			}
		}
		if c.runLanes(chains) != nil {
			return
		}
	}
}

// spent says whether PIBAKE_SOAK_FOR has run out: no chain starts then.
func (c *campaign) spent() bool {
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	return c.cfg.budget > 0 && now().Sub(c.started) > c.cfg.budget
}

func (c *campaign) hits() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	hit := map[string]int{}
	for _, r := range c.records {
		if r.hit != "" {
			hit[r.hit]++
		}
	}
	return hit
}
