package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The host's side of a silent guest. QEMU's monitor says where each
// virtual CPU is, but not whether its host thread runs: a vCPU that
// spins, one that waits for QEMU's big lock (the main loop stuck in a
// host write, say) and one that waits for an interrupt all print
// nothing. CI's run of 6ddf48c saw a virt guest silent for 3 min 5 s in
// U-Boot, between "Loading Ramdisk" and its "OK", no CPU halted; the
// monitor's answer and the guest's next line came together, which fits
// a main loop that was blocked as well as a lost interrupt. So each probe
// also samples QEMU's threads twice, a second apart: their state, the
// kernel function a sleeping one waits in, and the CPU time each used
// between the samples, with the host's CPU and I/O pressure.

// threadSample is one thread of a process as /proc shows it.
type threadSample struct {
	tid   int
	name  string
	state string        // R running, S sleeping, D in uninterruptible I/O
	cpu   time.Duration // user and system time so far
	wchan string        // where a sleeping thread waits
}

// userHZ is the unit of /proc's utime and stime on Linux (USER_HZ).
const userHZ = 100

// parseThreadStat reads a /proc/<pid>/task/<tid>/stat line. The name is
// between the first '(' and the last ')' and may hold spaces
// ("CPU 0/TCG").
func parseThreadStat(line string) (name, state string, cpu time.Duration, err error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return "", "", 0, fmt.Errorf("stat line %q: no (name)", line)
	}
	f := strings.Fields(line[end+1:])
	// After the name: state, ppid, pgrp, session, tty, tpgid, flags,
	// minflt, cminflt, majflt, cmajflt, utime, stime.
	if len(f) < 13 {
		return "", "", 0, fmt.Errorf("stat line %q: %d fields after the name, want at least 13", line, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", "", 0, fmt.Errorf("stat line %q: %w", line, err)
		}
		ticks += n
	}
	return line[open+1 : end], f[0], time.Duration(ticks) * time.Second / userHZ, nil
}

// sampleThreads reads every thread of pid.
func sampleThreads(pid int) (map[int]threadSample, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make(map[int]threadSample, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			continue // the thread ended
		}
		name, state, cpu, err := parseThreadStat(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, err
		}
		w, _ := os.ReadFile(filepath.Join(dir, e.Name(), "wchan"))
		out[tid] = threadSample{tid: tid, name: name, state: state, cpu: cpu, wchan: strings.TrimSpace(string(w))}
	}
	return out, nil
}

// threadUse is a thread seen twice: its second sample and the CPU it
// used in between.
type threadUse struct {
	threadSample
	used time.Duration
}

// threadUses samples pid's threads twice, gap apart, and returns each
// thread that was there both times, the busiest first.
func threadUses(pid int, gap time.Duration) ([]threadUse, error) {
	first, err := sampleThreads(pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(gap)
	second, err := sampleThreads(pid)
	if err != nil {
		return nil, err
	}
	var rows []threadUse
	for tid, s := range second {
		if f, ok := first[tid]; ok {
			rows = append(rows, threadUse{s, s.cpu - f.cpu})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].used != rows[j].used {
			return rows[i].used > rows[j].used
		}
		return rows[i].tid < rows[j].tid
	})
	return rows, nil
}

// threadView says, for the probe's log, what threadUses found (each
// thread's state, where a sleeping one waits, the CPU it used) and the
// host's pressure.
func threadView(pid int, gap time.Duration) (string, error) {
	rows, err := threadUses(pid, gap)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "QEMU's threads (pid %d) over %s:", pid, gap)
	for _, r := range rows {
		w := ""
		if r.state != "R" && r.wchan != "" && r.wchan != "0" {
			w = " in " + r.wchan
		}
		fmt.Fprintf(&b, "\n    %-18q %s%s, %s of CPU", r.name, r.state, w, r.used.Round(10*time.Millisecond))
	}
	for _, res := range []string{"cpu", "io", "memory"} {
		if p, err := os.ReadFile("/proc/pressure/" + res); err == nil {
			line, _, _ := strings.Cut(string(p), "\n")
			fmt.Fprintf(&b, "\n    the host's %s pressure: %s", res, line)
		}
	}
	return b.String(), nil
}
