package reporter

import (
	"runtime/debug"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/state"
)

// Device is what the report says about the device besides its state file.
type Device struct {
	Name   string        // the broker user name, the topic's DEVICE
	Config config.Config // the agent's configuration (channel, image, board, heartbeat)
	Booted string        // the running slot ("a", "b"), "" if unknown
}

// Snapshot is the report for the agent's state st at now. What the device
// runs is the booted slot's release in st (else the image's own name and
// version); Last is the newest update st records (attemptOf).
func Snapshot(d Device, st state.State, now time.Time) report.State {
	c := d.Config
	s := report.State{
		Format: report.Format, Device: d.Name, Channel: c.Channel, Board: c.Board,
		Image: c.Image, Version: c.Version, Slot: d.Booted, Agent: agentVersion(c),
		Time: now.UTC().Truncate(time.Second), Degraded: clip(st.Degraded), Error: clip(st.LastError),
	}
	if c.Report != nil {
		s.Heartbeat = int64(heartbeat(*c.Report) / time.Second)
	}
	// A slot as flashed runs the image whose configuration this is: its
	// version is c.Version, not the state's marker.
	if r, ok := st.Slots[d.Booted]; ok && r.Image != "" && r.Version != state.AsFlashed {
		s.Image, s.Version, s.Serial = r.Image, r.Version, r.Serial
	}
	if st.Trial != nil && st.Trial.Slot == d.Booted {
		s.BootCount = st.Trial.Boots
	}
	s.Last = attemptOf(st)
	return s
}

// attemptOf is the last update st records: a trial or a download in
// progress; else the last install that reached its trial, rolled back if
// st lists it as failed, committed if a slot holds it; else the newest
// failure.
func attemptOf(st state.State) *report.Attempt {
	moved := func(a *report.Attempt) *report.Attempt {
		if m := st.LastInstall; m != nil && m.Version == a.Version {
			a.BytesDownloaded, a.BytesReused, a.InstallSeconds = m.Downloaded, m.Reused, m.Seconds
		}
		return a
	}
	switch {
	case st.Trial != nil:
		r := st.Trial.Release
		return moved(&report.Attempt{Image: r.Image, Version: r.Version, Serial: r.Serial, Result: report.ResultInProgress, Time: st.Trial.Since.UTC()})
	case st.Download != nil:
		a := &report.Attempt{Serial: st.Download.Serial, Result: report.ResultInProgress}
		if st.LastError != "" {
			// The install stopped on an error; the agent tries again
			// at its next poll.
			a.Result = report.ResultFailed
			a.Check, a.Reason = splitStage(st.LastError)
		}
		return a
	}
	if m := st.LastInstall; m != nil {
		if f, ok := st.Failed[m.Version]; ok {
			return moved(failure(f))
		}
		for _, r := range st.Slots {
			if r.Version == m.Version {
				return moved(&report.Attempt{Image: r.Image, Version: r.Version, Serial: r.Serial, Result: report.ResultCommitted})
			}
		}
	}
	var newest *state.Failure
	for _, f := range st.Failed {
		if newest == nil || f.At.After(newest.At) {
			newest = &f
		}
	}
	if newest != nil {
		return failure(*newest)
	}
	return nil
}

func failure(f state.Failure) *report.Attempt {
	check := f.Check
	if check == "" {
		check = f.Stage
	}
	return &report.Attempt{Image: f.Image, Version: f.Version, Serial: f.Serial, Result: report.ResultRolledBack, Check: clipN(check, 128), Reason: clip(f.Reason), Time: f.At.UTC()}
}

// splitStage splits the agent's "stage: reason" error.
func splitStage(s string) (stage, reason string) {
	stage, reason, ok := strings.Cut(s, ": ")
	if !ok || len(stage) > 32 || strings.ContainsAny(stage, " ") {
		return "", clip(s)
	}
	return stage, clip(reason)
}

func clip(s string) string { return clipN(s, 1024) }

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func heartbeat(r config.Report) time.Duration {
	if r.Heartbeat > 0 {
		return r.Heartbeat
	}
	return config.DefaultHeartbeat
}

// agentVersion is the version of pibake the agent was built from: as the
// build recorded it in the image's configuration, else as Go recorded it
// in the binary ("devel" for a build from a checkout).
func agentVersion(c config.Config) string {
	if c.Agent != "" {
		return clipN(c.Agent, 128)
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return clipN(bi.Main.Version, 128)
	}
	return "devel"
}
