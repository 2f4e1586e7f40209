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
	s := newSim(t, 1, "2.0.0")
	d := s.fleet.Devices[0]
	for _, c := range []struct {
		version string
		want    fleet.Outcome
	}{{"2.0.0", fleet.Failed}, {"2.0.1", fleet.Succeeded}} {
		doc, err := s.repo.Publish(s.ctx, c.version, "", s.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		s.turn("the update to " + c.version)
		rep := d.Report()
		got, why := fleet.OutcomeOf(fleet.Release{Channel: Channel, Image: doc.Image, Version: doc.Version, Since: doc.Serial}, rep)
		if got != c.want {
			t.Errorf("%s: the device's report %s judged %v (%s), want %v; its state: %+v", c.version, show(rep), got, why, c.want, d.State())
		}
	}
}

func show(s report.State) string {
	if s.Last == nil {
		return "with no last attempt"
	}
	return "of " + s.Last.Result + " " + s.Last.Image + " " + s.Last.Version + " serial " + itoa(int64(s.Last.Serial))
}
