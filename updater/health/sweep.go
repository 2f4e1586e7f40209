package health

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// What a health command starts must end with its check, and a process
// group does not hold it: a child can call setsid, and a double fork
// leaves a grandchild that init adopts. So, for as long as a command
// runs, the agent is the child subreaper of its process (prctl
// PR_SET_CHILD_SUBREAPER): whatever a command's process leaves behind is
// adopted by the agent, not by init, and stays where the agent can find
// it. After each run the agent sweeps: it reads /proc and kills, then
// reaps, every process of the run's family, which is
//
//   - every process whose environment holds the run's token in
//     EnvToken (every descendant inherits it unless it replaces its
//     environment),
//   - every process in the run's session or process group (the command
//     starts in a session of its own) or in a session or group one of the
//     family made (setsid),
//   - every child of one of the family,
//
// over and over until none is left. The agent itself, its session and
// its process group are never part of it.

// EnvToken is the variable every health command finds in its
// environment: a token of its run, by which the agent finds what the
// command started.
const EnvToken = "PIBAKE_HEALTH_CHECK"

// reaper counts the runs that need the agent to be the subreaper; the
// attribute is the whole process's, so concurrent runs share it.
var reaper struct {
	sync.Mutex
	n int
}

// holdReaper makes this process the child subreaper until release.
func holdReaper() (release func(), err error) {
	reaper.Lock()
	defer reaper.Unlock()
	if reaper.n == 0 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("health: become the subreaper of commands: %w", err)
		}
	}
	reaper.n++
	return func() {
		reaper.Lock()
		defer reaper.Unlock()
		if reaper.n--; reaper.n == 0 {
			_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		}
	}, nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// proc is one line of /proc/<pid>/stat, the fields the sweep needs.
type proc struct {
	pid, ppid, pgid, sid int
	zombie               bool
	start                uint64 // clock ticks after boot: the process's identity with pid
}

// readStat reads /proc/<pid>/stat under root (/proc on the device).
func readStat(root string, pid int) (proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", root, pid))
	if err != nil {
		return proc{}, err
	}
	// The command name is in parentheses and may hold anything: the
	// fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return proc{}, fmt.Errorf("%s/%d/stat: no command name", root, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return proc{}, fmt.Errorf("%s/%d/stat: %d fields", root, pid, len(f))
	}
	p := proc{pid: pid, zombie: f[0] == "Z"}
	p.ppid, _ = strconv.Atoi(f[1])
	p.pgid, _ = strconv.Atoi(f[2])
	p.sid, _ = strconv.Atoi(f[3])
	p.start, _ = strconv.ParseUint(f[19], 10, 64)
	return p, nil
}

// scan reads every process under root.
func scan(root string) ([]proc, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("health: list processes: %w", err)
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, err := readStat(root, pid); err == nil { // gone meanwhile
			out = append(out, p)
		}
	}
	return out, nil
}

// hasToken reports whether the environment of pid holds EnvToken=token.
func hasToken(root string, pid int, token string) bool {
	b, err := os.ReadFile(fmt.Sprintf("%s/%d/environ", root, pid))
	if err != nil {
		return false
	}
	want := []byte(EnvToken + "=" + token)
	for v := range bytes.SplitSeq(b, []byte{0}) {
		if bytes.Equal(v, want) {
			return true
		}
	}
	return false
}

// family is what a sweep knows of a run's processes; it only grows, so a
// process killed in one round is still known as a zombie in the next.
type family struct {
	self        proc // this process, never in the family
	sids, pgids map[int]bool
	seen        map[proc]bool // by pid and start time
}

func newFamily(self proc, sid int) *family {
	return &family{self: self, sids: map[int]bool{sid: true}, pgids: map[int]bool{sid: true}, seen: map[proc]bool{}}
}

// pick returns the members among procs: those seen before, those marked
// (by token), those in one of the family's sessions or groups, and the
// children of any of them; the sessions and groups of new members join.
func (f *family) pick(procs []proc, marked func(int) bool) []proc {
	in := map[int]bool{}
	for changed := true; changed; {
		changed = false
		for _, p := range procs {
			if in[p.pid] || p.pid == f.self.pid {
				continue
			}
			id := proc{pid: p.pid, start: p.start}
			if !f.seen[id] && !in[p.ppid] && !f.sids[p.sid] && !f.pgids[p.pgid] && (p.zombie || !marked(p.pid)) {
				continue
			}
			in[p.pid], f.seen[id], changed = true, true, true
			if p.sid != f.self.sid {
				f.sids[p.sid] = true
			}
			if p.pgid != f.self.pgid {
				f.pgids[p.pgid] = true
			}
		}
	}
	var out []proc
	for _, p := range procs {
		if in[p.pid] {
			out = append(out, p)
		}
	}
	return out
}

// sweep kills and reaps the family of the run whose session is sid and
// whose token is token, until none is left or about two seconds pass; it
// returns the pids still there then.
func sweep(root string, sid int, token string) ([]int, error) {
	self, err := readStat(root, os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("health: read this process: %w", err)
	}
	f := newFamily(self, sid)
	var left []int
	for round := range 40 {
		procs, err := scan(root)
		if err != nil {
			return nil, err
		}
		left = left[:0]
		for _, p := range f.pick(procs, func(pid int) bool { return hasToken(root, pid, token) }) {
			left = append(left, p.pid)
			switch {
			case !p.zombie:
				signal(root, p, syscall.SIGKILL)
			case p.ppid == self.pid:
				var ws unix.WaitStatus
				_, _ = unix.Wait4(p.pid, &ws, unix.WNOHANG, nil) // ours: no other Wait is for it
			}
		}
		if len(left) == 0 {
			return nil, nil
		}
		time.Sleep(time.Duration(min(round+1, 10)) * 5 * time.Millisecond)
	}
	slices.Sort(left)
	return left, nil
}

// signal sends sig to p if its pid still names p: the handle is taken
// first (a pidfd), then the start time checked, so a pid reused meanwhile
// is left alone.
func signal(root string, p proc, sig syscall.Signal) {
	h, err := os.FindProcess(p.pid)
	if err != nil {
		return
	}
	defer h.Release()
	if now, err := readStat(root, p.pid); err != nil || now.start != p.start {
		return
	}
	_ = h.Signal(sig)
}
