package e2e

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// How the QEMU stories share the machine. A guest under TCG keeps about
// one core busy while it boots; the stories run in two lanes, one story
// at a time in each: the beside lane (TestUpdate, mostly waiting on the
// guest's own timers, poll intervals and health deadlines, and
// TestProvisionImager) and the other stories' lane (cpuBound). The lanes
// are balanced by the stories' times in the clean-clone run of
// 2026-12-07 (docs/benchmarks.md, the test suite): 33 + 3 minutes
// against 12 + 7 + 6 + 6 + 4. At most one story waits in the beside lane,
// so go test's three parallel slots always leave the other lane one.
// Two lanes only
// when the machine has a core free for the second: at the start
// of the run, the cores other programs leave idle must be at least one
// and a half (two guests' worth, give or take the host's own work), or
// every story takes its turn. A developer's
// laptop compiling beside make test gets the slower, serial run instead of
// three guests fighting for two cores and missing their deadlines.
var (
	cpuBound   sync.Mutex
	besideLane sync.Mutex
	besideOK   bool
	schedOnce  sync.Once
	schedLine  string
	timesMu    sync.Mutex
	storyTimes []storyTime
)

type storyTime struct {
	name         string
	waited, took time.Duration
	failed       bool
}

// schedule decides once per run whether beside stories may run beside.
func schedule() {
	schedOnce.Do(func() {
		cores := runtime.NumCPU()
		load := busyCores(cores)
		free := float64(cores) - load
		besideOK = free >= 1.5 && os.Getenv("PIBAKE_E2E_SERIAL") == ""
		how := "serial: every story takes its turn"
		if besideOK {
			how = "two lanes: TestUpdate and TestProvisionImager beside the others"
		}
		schedLine = fmt.Sprintf("e2e: %d cores, %.2f of them busy with other work before the stories: %s (PIBAKE_E2E_SERIAL=1 forces serial)", cores, load, how)
		fmt.Fprintln(os.Stderr, schedLine)
	})
}

// busyCores is how many cores other programs keep busy: the least of
// three one-second readings of the kernel's CPU counters (not the load
// average, which still remembers the packages make test ran before this
// one). A program that keeps cores busy does so in every reading; a burst
// that ends within them (the test binary's own start, a build step) does
// not make the whole run serial.
func busyCores(cores int) float64 {
	least := float64(cores)
	for i := 0; i < 3; i++ {
		least = min(least, busyOver(cores, time.Second))
	}
	return least
}

// busyOver is how many cores were busy during the next d.
func busyOver(cores int, d time.Duration) float64 {
	idle := func() (idle, total float64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseFloat(f, 64)
			total += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		return idle, total
	}
	i0, t0 := idle()
	time.Sleep(d)
	i1, t1 := idle()
	if t1 <= t0 {
		return 0
	}
	return float64(cores) * (1 - (i1-i0)/(t1-t0))
}

// story marks a QEMU test: skipped without PIBAKE_E2E, run in parallel,
// and unless beside (and the machine has a core for it), one at a time
// with the other CPU-bound stories. Its time, and how long it waited for
// its turn, are printed at the end of the run.
func story(t *testing.T, beside bool) {
	t.Helper()
	needE2E(t)
	t.Parallel()
	schedule()
	asked := time.Now()
	lane := &cpuBound
	if beside && besideOK {
		lane = &besideLane
	}
	lane.Lock()
	t.Cleanup(lane.Unlock)
	began := time.Now()
	t.Cleanup(func() {
		timesMu.Lock()
		defer timesMu.Unlock()
		storyTimes = append(storyTimes, storyTime{name: t.Name(), waited: began.Sub(asked), took: time.Since(began), failed: t.Failed()})
	})
}

// printStoryTimes prints each story's time, slowest first.
func printStoryTimes() {
	timesMu.Lock()
	defer timesMu.Unlock()
	if len(storyTimes) == 0 {
		return
	}
	sort.Slice(storyTimes, func(i, j int) bool { return storyTimes[i].took > storyTimes[j].took })
	var b strings.Builder
	fmt.Fprintln(&b, schedLine)
	fmt.Fprintln(&b, "e2e story times, slowest first (waited: for its turn on the cores):")
	for _, s := range storyTimes {
		verdict := "ok"
		if s.failed {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "  %8s  %-4s %-24s waited %s\n", s.took.Round(time.Second), verdict, s.name, s.waited.Round(time.Second))
	}
	b.WriteString(wokenSummary())
	fmt.Fprint(os.Stderr, b.String())
	// go test shows a passing package's output only with -v: make test
	// prints this file after the package times.
	if path := os.Getenv("PIBAKE_E2E_TIMES"); path != "" {
		os.WriteFile(path, []byte(b.String()), 0o644)
	}
}
