package reporter

import (
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/state"
)

// TestSnapshot: the report says what the state file says: the running
// release, and the last update with its result, check and reason.
func TestSnapshot(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rel := state.Release{Image: "demo", Version: "1.1", Serial: 4}
	for name, tc := range map[string]struct {
		st                    state.State
		result, check, reason string
		version               string
	}{
		"fresh":       {st: state.State{}},
		"rolled back": {st: rolledBack(), result: report.ResultRolledBack, check: "hello.service", reason: "inactive (failed)", version: "1.1"},
		"in trial": {st: state.State{Trial: &state.Trial{Slot: "b", Release: rel, Since: at, Boots: 1}, LastInstall: &state.Transfer{Version: "1.1", Downloaded: 5}},
			result: report.ResultInProgress, version: "1.1"},
		"download failed": {st: state.State{Download: &state.Download{Serial: 4, Slot: "b"}, LastError: "download: sha256 mismatch"},
			result: report.ResultFailed, check: "download", reason: "sha256 mismatch"},
		"committed": {st: state.State{Slots: map[string]state.Release{"b": rel}, Committed: "b", LastInstall: &state.Transfer{Version: "1.1"}},
			result: report.ResultCommitted, version: "1.1"},
		"boot failure without install record": {st: state.State{Failed: map[string]state.Failure{"1.1": {Version: "1.1", Stage: "boot", Reason: "the trial slot did not come up", At: at}}},
			result: report.ResultRolledBack, check: "boot", reason: "the trial slot did not come up", version: "1.1"},
	} {
		s := Snapshot(Device{Name: "box-1", Config: cfg, Booted: "a"}, tc.st, at)
		if err := s.Validate("box-1"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		l := s.Last
		if tc.result == "" {
			if l != nil {
				t.Errorf("%s: last %+v, want none", name, l)
			}
			continue
		}
		if l == nil || l.Result != tc.result || l.Check != tc.check || l.Reason != tc.reason || l.Version != tc.version {
			t.Errorf("%s: last %+v, want %s %q %q %s", name, l, tc.result, tc.check, tc.reason, tc.version)
		}
	}
	s := Snapshot(Device{Name: "box-1", Config: cfg, Booted: "a"}, rolledBack(), at)
	if s.Version != "1.0" || s.Serial != 3 || s.Slot != "a" || s.Last.BytesDownloaded != 1000 || s.Last.InstallSeconds != 4 {
		t.Errorf("running release or transfer: %+v %+v", s, s.Last)
	}
}

// TestCredentialsNames: the credentials' user rule (config) is the
// device name rule of the topics (report).
func TestCredentialsNames(t *testing.T) {
	for _, name := range []string{"box-1", "a", "Box_2.lab", "-x", ".x", "a/b", "a+", "a#", "", "a b", strings.Repeat("x", 63), strings.Repeat("x", 64), "é"} {
		cfgErr := config.Credentials{User: name, Password: "p"}.Validate("f")
		if (cfgErr == nil) != (report.CheckDevice(name) == nil) {
			t.Errorf("%q: config says %v, report says %v", name, cfgErr, report.CheckDevice(name))
		}
	}
}

// TestSnapshotAgentVersion: the report names the agent's version as the
// build recorded it in the image's configuration.
func TestSnapshotAgentVersion(t *testing.T) {
	c := cfg
	c.Agent = "v1.4.0-2-gabcdef0"
	if s := Snapshot(Device{Name: "box-1", Config: c}, state.State{}, time.Now()); s.Agent != c.Agent {
		t.Errorf("agent %q, want %q", s.Agent, c.Agent)
	}
	c.Agent = ""
	if s := Snapshot(Device{Name: "box-1", Config: c}, state.State{}, time.Now()); s.Agent == "" {
		t.Error("no agent version without the image's")
	}
}

// TestSnapshotAsFlashed: a device that never installed a release reports
// its image's version, not the state's "as flashed" marker (fleet status
// showed every new device as version "as flashed").
func TestSnapshotAsFlashed(t *testing.T) {
	st := state.State{Slots: map[string]state.Release{"a": {Image: cfg.Image, Version: state.AsFlashed}}}
	if s := Snapshot(Device{Name: "box-1", Config: cfg, Booted: "a"}, st, time.Now()); s.Version != cfg.Version || s.Slot != "a" {
		t.Errorf("a device as flashed reports version %q in slot %q, want the image's %q", s.Version, s.Slot, cfg.Version)
	}
}
