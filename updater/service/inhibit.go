package service

// Inhibits: an application defers the agent's reboot into an installed
// release by holding one. Two kinds are read, both without D-Bus:
//
//   - a file in InhibitDir (a folder an application's container can be
//     given with a bind mount): its name says who holds it, it is held
//     while the file exists;
//   - a systemd inhibitor lock taken with `systemd-inhibit
//     --what=shutdown --mode=block`, which logind records as a file in
//     SystemdInhibitDir (WHAT=, MODE=, WHO=, WHY= lines, next to a FIFO
//     named <id>.ref that is never opened).
//
// An inhibit only delays the reboot (agent.Config.MaxInhibit bounds how
// long); nothing in it changes what the agent installs or trusts.

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Where inhibits are read on the device.
const (
	InhibitDir        = "/run/pibake/inhibit"
	SystemdInhibitDir = "/run/systemd/inhibit"
)

// maxInhibits bounds how many of each kind are read and named.
const maxInhibits = 16

// Inhibitors returns who holds an inhibit now: the files in dir, and the
// shutdown-blocking locks logind records in systemdDir.
func Inhibitors(dir, systemdDir string) func() []string {
	return func() []string {
		var who []string
		for _, e := range readDir(dir) {
			if e.Type().IsRegular() {
				who = append(who, clip(e.Name()))
			}
		}
		for _, e := range readDir(systemdDir) {
			if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), ".ref") {
				continue
			}
			if w, ok := systemdLock(filepath.Join(systemdDir, e.Name())); ok {
				who = append(who, w)
			}
		}
		return who
	}
}

// readDir lists at most maxInhibits entries of dir; none if it is
// missing or unreadable.
func readDir(dir string) []os.DirEntry {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	es, _ := f.ReadDir(maxInhibits)
	slices.SortFunc(es, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return es
}

// systemdLock reads one of logind's inhibitor files: it holds the reboot
// back when it blocks shutdown. It names the holder by WHO (and WHY).
func systemdLock(path string) (string, bool) {
	// Non-blocking: a FIFO put where a file was listed does not hang us.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	var what, mode, who, why string
	s := bufio.NewScanner(io.LimitReader(f, 8<<10))
	for s.Scan() {
		k, v, _ := strings.Cut(s.Text(), "=")
		switch k {
		case "WHAT":
			what = v
		case "MODE":
			mode = v
		case "WHO":
			who = v
		case "WHY":
			why = v
		}
	}
	if mode != "block" || !slices.Contains(strings.Split(what, ":"), "shutdown") {
		return "", false
	}
	if who == "" {
		who = "a systemd inhibitor"
	}
	if why != "" {
		who += " (" + why + ")"
	}
	return clip(who), true
}

// clip bounds a holder's name as status shows it.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
