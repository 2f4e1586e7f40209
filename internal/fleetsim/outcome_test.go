package fleetsim

import (
	"testing"

	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/updater/report"
)

// TestRollbackReportCounts: the report a device sends after the real
// agent rolled a release back is counted by the rollout watch as a
// failure of that release (fleet.OutcomeOf), and a commit as a success:
// the watch judges what real devices write, not reports made by hand.
func TestRollbackReportCounts(t *testing.T) {
	for _, c := range []struct {
		bad  []string
		want fleet.Outcome
	}{{nil, fleet.Succeeded}, {[]string{"2.0.0"}, fleet.Failed}} {
		s := newSim(t, 1, c.bad...)
		doc, err := s.repo.Publish(s.ctx, "2.0.0", "", s.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		s.round("the update")
		d := s.fleet.Devices[0]
		rep := d.Report()
		got, why := fleet.OutcomeOf(fleet.Release{Channel: Channel, Image: doc.Image, Version: doc.Version, Since: doc.Serial}, rep)
		if got != c.want {
			t.Errorf("bad %v: the device's report %s judged %v (%s), want %v; its state: %+v", c.bad, show(rep), got, why, c.want, d.State())
		}
	}
}

func show(s report.State) string {
	if s.Last == nil {
		return "with no last attempt"
	}
	return "of " + s.Last.Result + " " + s.Last.Image + " " + s.Last.Version + " serial " + itoa(int64(s.Last.Serial))
}
