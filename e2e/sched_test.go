package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// at a time in each, balanced by the stories' times in the clean-clone
// runs (docs/benchmarks.md, the test suite):
//
//	laneUpdate: TestUpdate (mostly waiting on the guest's own timers,
//	            poll intervals and health deadlines), TestPi4,
//	            TestDocker, TestProvisionImager (and TestPowerCut under
//	            make soak)
//	laneEdge:   TestEdge (its first boot and its two updates), then
//	            TestPi3Fallback and TestBoot
//
// Every story gets one of go test's parallel slots (setParallel: a story
// waiting for its lane holds its slot), so a lane's turn never waits for
// a slot the other lane's queue holds. Two lanes only when the machine has
// a core free for the second: at the start of the run, the cores other
// programs leave idle must be at least one and a half (two guests' worth,
// give or take the host's own work), or every story takes its turn in one
// queue. A developer's laptop compiling beside make test gets the slower,
// serial run instead of three guests fighting for two cores and missing
// their deadlines.
type lane int

const (
	laneUpdate lane = iota
	laneEdge
)

// stories is how many tests call story: setParallel gives each a slot.
const stories = 8

var (
	lanes      [2]sync.Mutex
	twoLanes   bool
	schedOnce  sync.Once
	schedLine  string
	timesMu    sync.Mutex
	storyTimes []storyTime
)

// setParallel raises go test's -parallel (make test passes 3 for the
// other packages' parallel tests) to one slot per story.
func setParallel() {
	if f := flag.Lookup("test.parallel"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n < stories {
			f.Value.Set(strconv.Itoa(stories))
		}
	}
}

type storyTime struct {
	name         string
	waited, took time.Duration
	failed       bool
}

// schedule decides once per run whether the stories run in two lanes.
func schedule() {
	schedOnce.Do(func() {
		cores := runtime.NumCPU()
		load := busyCores(cores)
		free := float64(cores) - load
		twoLanes = free >= 1.5 && os.Getenv("PIBAKE_E2E_SERIAL") == ""
		how := "serial: every story takes its turn"
		if twoLanes {
			how = "two lanes: TestUpdate, TestPi4, TestDocker and TestProvisionImager in one, TestEdge, TestPi3Fallback and TestBoot in the other"
		}
		slots := "?"
		if f := flag.Lookup("test.parallel"); f != nil {
			slots = f.Value.String()
		}
		schedLine = fmt.Sprintf("e2e: %d cores, %.2f of them busy with other work before the stories: %s (PIBAKE_E2E_SERIAL=1 forces serial); %s parallel slots", cores, load, how, slots)
		fmt.Fprintln(os.Stderr, schedLine)
		// make test (scripts/test.sh) starts the other packages once the
		// lanes are chosen, so they do not count as the machine's load.
		if path := os.Getenv("PIBAKE_E2E_SCHEDULED"); path != "" {
			if err := os.WriteFile(path, []byte(schedLine), 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: PIBAKE_E2E_SCHEDULED: %v\n", err)
			}
		}
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
// one at a time in its lane (or, on a busy machine, one at a time). Its
// time, and how long it waited for its turn, are printed at the end of
// the run.
func story(t *testing.T, l lane) {
	t.Helper()
	needE2E(t)
	t.Parallel()
	schedule()
	asked := time.Now()
	if !twoLanes {
		l = laneUpdate
	}
	lanes[l].Lock()
	t.Cleanup(lanes[l].Unlock)
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

// TestStoriesCounted: each story has a parallel slot of its own
// (setParallel), or a story waiting for its lane could hold the slot the
// other lane's next story needs.
func TestStoriesCounted(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("the package's test files: %v", err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += strings.Count(string(b), "\tstory(t, ")
	}
	if n != stories {
		t.Errorf("%d tests call story, stories says %d", n, stories)
	}
}

// TestMakeTestOrder runs make test's scripts/test.sh with a stand-in for
// go that logs what it is asked to do: the other packages must start only
// once the stories have chosen their lanes (the file
// PIBAKE_E2E_SCHEDULED names), or the stories would count them as the
// machine's load and run serially; and either side's failure must fail
// the run.
func TestMakeTestOrder(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	fake := filepath.Join(dir, "go")
	script := `#!/bin/sh
log=` + log + `
case "$1" in list) echo example.com/p/a; echo example.com/p/e2e; exit 0;; esac
case " $* " in
*" ./e2e/ "*)
	echo e2e-start >>$log; sleep 1
	echo scheduled >>$log; echo "e2e: lanes" >"$PIBAKE_E2E_SCHEDULED"; sleep 2
	echo e2e-end >>$log; echo "ok  	example.com/p/e2e	3.0s"; exit "$FAKE_E2E_RC";;
esac
echo "others $*" >>$log; echo "ok  	example.com/p/a	0.1s"; exit "$FAKE_OTHERS_RC"
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e2e, others string
		serial      bool
		wantOK      bool
		order       []string
	}{
		{"0", "0", false, true, []string{"e2e-start", "scheduled", "others", "e2e-end"}},
		{"1", "0", false, false, []string{"e2e-start", "scheduled", "others", "e2e-end"}},
		{"0", "1", false, false, []string{"e2e-start", "scheduled", "others", "e2e-end"}},
		{"0", "0", true, true, []string{"e2e-start", "scheduled", "e2e-end", "others"}},
	} {
		os.Remove(log)
		cmd := exec.Command("bash", filepath.Join("..", "scripts", "test.sh"))
		cmd.Env = append(os.Environ(), "GO="+fake, "FAKE_E2E_RC="+c.e2e, "FAKE_OTHERS_RC="+c.others, "PIBAKE_TEST_SERIAL=")
		if c.serial {
			cmd.Env = append(cmd.Env, "PIBAKE_TEST_SERIAL=1")
		}
		out, err := cmd.CombinedOutput()
		if (err == nil) != c.wantOK {
			t.Errorf("e2e exit %s, others exit %s, serial %v: the run's error %v, want success %v\n%s", c.e2e, c.others, c.serial, err, c.wantOK, out)
		}
		b, _ := os.ReadFile(log)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			got = append(got, strings.Fields(l)[0])
		}
		if strings.Join(got, " ") != strings.Join(c.order, " ") {
			t.Errorf("serial %v: the script ran %q, want %q", c.serial, got, c.order)
		}
		if !strings.Contains(string(out), "package times, slowest first:") || !strings.Contains(string(out), "example.com/p/e2e") {
			t.Errorf("the run's summary lacks the packages' times:\n%s", out)
		}
	}
}
