package fleet

import (
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/reporter"
	"github.com/pibake/pibake/updater/state"
)

func failed(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		m[string(rune('a'+i))+"-box"] = "rolled-back, hello.service: inactive"
	}
	return m
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		name  string
		brake Brake
		tally Tally
		halt  bool
		why   string
	}{
		{"count below", Brake{MaxFailures: 3}, Tally{Attempts: 50, Failed: failed(2)}, false, ""},
		{"count reached", Brake{MaxFailures: 3}, Tally{Attempts: 3, Failed: failed(3)}, true, "3 devices failed it, the --max-failures of 3"},
		{"rate before the minimum", Brake{MaxFailureRate: 0.2, MinAttempts: 10}, Tally{Attempts: 9, Failed: failed(9)}, false, ""},
		{"rate at the minimum", Brake{MaxFailureRate: 0.2, MinAttempts: 10}, Tally{Attempts: 10, Failed: failed(2)}, true, "2 of 10 attempts failed (20.0%)"},
		{"rate below", Brake{MaxFailureRate: 0.2, MinAttempts: 10}, Tally{Attempts: 11, Failed: failed(2)}, false, ""},
		{"rate without a minimum", Brake{MaxFailureRate: 0.5}, Tally{Attempts: 1, Failed: failed(1)}, true, "1 of 1 attempts failed"},
		{"no failure, no rate", Brake{MaxFailureRate: 0.5}, Tally{}, false, ""},
		{"in flight do not count", Brake{MaxFailureRate: 0.5, MinAttempts: 4}, Tally{Attempts: 2, InFlight: 100, Failed: failed(2)}, false, ""},
		{"both, count first", Brake{MaxFailures: 2, MaxFailureRate: 0.9, MinAttempts: 100}, Tally{Attempts: 40, Failed: failed(2)}, true, "--max-failures of 2"},
		{"names the devices", Brake{MaxFailures: 12}, Tally{Attempts: 12, Failed: failed(12)}, true, "a-box (rolled-back, hello.service: inactive); b-box"},
		{"and how many more", Brake{MaxFailures: 12}, Tally{Attempts: 12, Failed: failed(12)}, true, "and 2 more"},
	} {
		v := c.brake.Judge(c.tally)
		if v.Halt != c.halt || !strings.Contains(v.Why, c.why) {
			t.Errorf("%s: %+v, want halt %v and %q", c.name, v, c.halt, c.why)
		}
	}
}

func TestBrakeValidate(t *testing.T) {
	for _, b := range []Brake{{}, {MinAttempts: 5}, {MaxFailures: -1}, {MaxFailureRate: 1.5}, {MaxFailureRate: -0.1}} {
		if b.Validate() == nil {
			t.Errorf("%+v accepted", b)
		}
	}
	if err := (Brake{MaxFailureRate: 0.1, MinAttempts: 20}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestOutcomeOf(t *testing.T) {
	rel := Release{Channel: "stable", Image: "demo", Version: "2.0", Since: 5}
	state := func(ch, version string, serial uint64, result string) report.State {
		return report.State{Channel: ch, Last: &report.Attempt{Image: "demo", Version: version, Serial: serial, Result: result, Check: "health", Reason: "hello.service inactive"}}
	}
	for _, c := range []struct {
		name string
		s    report.State
		want Outcome
	}{
		{"no attempt", report.State{Channel: "stable"}, NotAttempted},
		{"another channel", state("beta", "2.0", 5, report.ResultFailed), NotAttempted},
		{"another version", state("stable", "1.9", 5, report.ResultFailed), NotAttempted},
		{"before the resume", state("stable", "2.0", 4, report.ResultRolledBack), NotAttempted},
		{"downloading", state("stable", "2.0", 5, report.ResultInProgress), InFlight},
		{"committed", state("stable", "2.0", 6, report.ResultCommitted), Succeeded},
		{"rolled back", state("stable", "2.0", 5, report.ResultRolledBack), Failed},
		{"failed", state("stable", "2.0", 5, report.ResultFailed), Failed},
	} {
		got, why := OutcomeOf(rel, c.s)
		if got != c.want || (got == Failed) != strings.Contains(why, "health: hello.service inactive") {
			t.Errorf("%s: %v %q, want %v", c.name, got, why, c.want)
		}
	}
}

// TestBrakeCountsAgentRollback: a rollback as the agent records it in its
// state file, turned into a report by the agent's own reporter, counts as
// a failure of that release (the record once named only the version, and
// the brake, which matches image, version and serial, never saw it).
func TestBrakeCountsAgentRollback(t *testing.T) {
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	st := state.State{
		Committed:   "a",
		Slots:       map[string]state.Release{"a": {Image: "demo", Version: "1.0", Serial: 4, Channel: "stable"}},
		LastInstall: &state.Transfer{Version: "2.0"},
		Failed:      map[string]state.Failure{"2.0": {Image: "demo", Version: "2.0", Serial: 5, Stage: "health", Check: "hello.service", Reason: "inactive", At: at}},
	}
	dev := reporter.Device{Name: "box-1", Config: config.Config{Channel: "stable", Image: "demo", Version: "1.0", Board: "pi4"}, Booted: "a"}
	s := reporter.Snapshot(dev, st, at)
	got, why := OutcomeOf(Release{Channel: "stable", Image: "demo", Version: "2.0", Since: 5}, s)
	if got != Failed || !strings.Contains(why, "hello.service") {
		t.Fatalf("the agent's rollback report %+v (last %+v) reads as outcome %v %q, want Failed", s, s.Last, got, why)
	}
}
