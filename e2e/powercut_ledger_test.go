package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pibake/pibake/internal/cachedir"
)

// The campaign's ledger: one line a finished cut, kept under the cache
// (soak/ledger.tsv), so that campaigns run in several sessions add up.
// A cut is written only once its chain's final checks have passed or
// failed: a run killed half-way writes nothing. PIBAKE_SOAK_RESUME=1
// reads it to skip the chains of a plan that already ran (no cut is run
// twice), and make soak prints its totals at the end.
//
// Columns, tab-separated: date (RFC 3339, UTC), git commit, seed, plan
// (the settings the plan is drawn from: "cuts=100,chain=3"; "sample" for
// the sample; ",only" added for a PIBAKE_SOAK_ONLY replay, which resume
// ignores), cut number, leg, phase aimed, phase hit ("none": the aimed
// phase never began, no cut was made), verdict ("ok" or the problems),
// seconds (the cut's share of its chain's time).

const ledgerHeader = "# date\tcommit\tseed\tplan\tcut\tleg\taimed\thit\tverdict\tseconds"

// ledgerLine is one line of the ledger.
type ledgerLine struct {
	date    time.Time
	commit  string
	seed    int64
	plan    string
	cut     int
	leg     string
	aimed   string
	hit     string
	verdict string
	seconds float64
}

// made says whether the line is a cut that was made (not a missed aim).
func (l ledgerLine) made() bool { return l.hit != "" && l.hit != "none" }

// ledgerPath is $PIBAKE_SOAK_LEDGER, else soak/ledger.tsv in pibake's
// cache folder.
func ledgerPath() (string, error) {
	if p := os.Getenv("PIBAKE_SOAK_LEDGER"); p != "" {
		return p, nil
	}
	dir, err := cachedir.Default()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "soak", "ledger.tsv"), nil
}

// planID names the settings a plan is drawn from: the same seed and the
// same plan ID draw the same cuts with the same numbers.
func planID(cfg soakConfig) string {
	id := fmt.Sprintf("cuts=%d,chain=%d", cfg.cuts, cfg.chainLen())
	if cfg.sample {
		id = "sample"
	}
	if len(cfg.only) > 0 {
		id += ",only"
	}
	return id
}

// format is the line as written, without its newline.
func (l ledgerLine) format() string {
	clean := func(s string) string {
		return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
	}
	hit := l.hit
	if hit == "" {
		hit = "none"
	}
	return strings.Join([]string{l.date.UTC().Format(time.RFC3339), clean(l.commit), strconv.FormatInt(l.seed, 10), clean(l.plan),
		strconv.Itoa(l.cut), clean(l.leg), clean(l.aimed), clean(hit), clean(l.verdict), strconv.FormatFloat(l.seconds, 'f', 0, 64)}, "\t")
}

// parseLedgerLine reads one line written by format.
func parseLedgerLine(s string) (ledgerLine, error) {
	f := strings.Split(s, "\t")
	if len(f) != 10 {
		return ledgerLine{}, fmt.Errorf("%d tab-separated fields, want 10", len(f))
	}
	var l ledgerLine
	var err error
	if l.date, err = time.Parse(time.RFC3339, f[0]); err != nil {
		return ledgerLine{}, fmt.Errorf("date: %w", err)
	}
	if l.seed, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return ledgerLine{}, fmt.Errorf("seed: %w", err)
	}
	if l.cut, err = strconv.Atoi(f[4]); err != nil {
		return ledgerLine{}, fmt.Errorf("cut number: %w", err)
	}
	if l.seconds, err = strconv.ParseFloat(f[9], 64); err != nil {
		return ledgerLine{}, fmt.Errorf("seconds: %w", err)
	}
	l.commit, l.plan, l.leg, l.aimed, l.hit, l.verdict = f[1], f[3], f[5], f[6], f[7], f[8]
	return l, nil
}

// readLedger reads the ledger; a missing file is an empty ledger.
func readLedger(path string) ([]ledgerLine, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the power-cut ledger: %w", err)
	}
	defer f.Close()
	var lines []ledgerLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		s := sc.Text()
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		l, err := parseLedgerLine(s)
		if err != nil {
			return nil, fmt.Errorf("power-cut ledger %s:%d: %w (fix or move the line aside; the ledger is only ever appended to)", path, n, err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the power-cut ledger %s: %w", path, err)
	}
	return lines, nil
}

// appendLedger adds lines to the ledger in one write, creating it (and
// its header) if needed. Chains finish at once when the campaign runs in
// lanes, and two make soak runs may share the ledger: the file is opened
// O_APPEND and written with one write (a line is never split by
// another's), under an exclusive flock (which holds between two opens in
// one process too), so that only one of them finds it empty and writes
// the header.
func appendLedger(path string, lines []ledgerLine) error {
	if len(lines) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("power-cut ledger: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("power-cut ledger: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return fmt.Errorf("lock the power-cut ledger %s: %w", path, err)
	}
	var b strings.Builder
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		b.WriteString(ledgerHeader + "\n")
	}
	for _, l := range lines {
		b.WriteString(l.format() + "\n")
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("append to the power-cut ledger %s: %w", path, err)
	}
	return f.Close()
}

// doneCuts is the cut numbers the ledger holds for that seed and plan.
func doneCuts(lines []ledgerLine, seed int64, plan string) map[int]bool {
	done := map[int]bool{}
	for _, l := range lines {
		if l.seed == seed && l.plan == plan {
			done[l.cut] = true
		}
	}
	return done
}

// resumeSeed is the seed of the ledger's last line of that plan.
func resumeSeed(lines []ledgerLine, plan string) (int64, bool) {
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i].plan == plan {
			return lines[i].seed, true
		}
	}
	return 0, false
}

// ledgerTotals sums the ledger up: cuts made, by phase hit, cuts with a
// problem, time, and the seeds and commits they came from.
func ledgerTotals(lines []ledgerLine) string {
	var made, missed, bad int
	var secs float64
	byPhase := map[string]int{}
	seeds, commits := map[int64]bool{}, map[string]bool{}
	for _, l := range lines {
		secs += l.seconds
		seeds[l.seed], commits[l.commit] = true, true
		if !l.made() {
			missed++
			continue
		}
		made++
		byPhase[l.hit]++
		if l.verdict != "ok" {
			bad++
		}
	}
	var phases []string
	for ph, n := range byPhase {
		phases = append(phases, fmt.Sprintf("%s %d", ph, n))
	}
	sort.Strings(phases)
	per := time.Duration(0)
	if made > 0 {
		per = (time.Duration(secs*float64(time.Second)) / time.Duration(made)).Round(time.Second)
	}
	return fmt.Sprintf("power-cut ledger: %d cuts made (%d more aimed at a phase that never began), %d with a problem, %s of QEMU in all (%s a cut), %d seeds, %d commits\nby phase hit: %s",
		made, missed, bad, time.Duration(secs*float64(time.Second)).Round(time.Second), per, len(seeds), len(commits), strings.Join(phases, ", "))
}

// gitCommit is the commit the campaign runs from ("-dirty" when tracked
// files differ from it), or "unknown".
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}
