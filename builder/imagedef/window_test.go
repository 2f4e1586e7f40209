package imagedef

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/config"
)

const withUpdater = `updater:
  server: http://10.0.2.2:8080
  keys: ["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"]
`

func TestWindowDefinition(t *testing.T) {
	root := writeRepo(t)
	d, err := Parse("small.yaml", []byte(good+withUpdater+"  window: {days: [mon, tue, wed, thu, fri], from: \"02:00\", to: \"05:00\", timezone: Europe/Paris}\n  inhibit: {max_delay: 12h}\n"), root, "")
	if err != nil {
		t.Fatal(err)
	}
	built := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w, err := d.Updater.ResolvedWindow(built)
	if err != nil || w == nil || len(w.Changes) < 70 || d.Updater.Inhibit.Max() != 12*time.Hour {
		t.Fatalf("resolved window %+v, %v", w, err)
	}
	// What the image carries reads back and opens at 02:00 Paris time,
	// summer and winter, decades on.
	data, err := config.Config{Window: w}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := config.Parse("updater.yaml", data)
	if err != nil || back.Window == nil {
		t.Fatalf("%s: %v", data, err)
	}
	for at, open := range map[string]bool{"2027-01-04T01:30:00Z": true, "2027-07-05T00:30:00Z": true, "2027-07-05T01:30:00Z": true, "2027-07-05T03:30:00Z": false, "2055-07-05T00:30:00Z": true, "2055-01-04T00:30:00Z": false} {
		tm, _ := time.Parse(time.RFC3339, at)
		if got := back.Window.Open(tm); got != open {
			t.Errorf("Open(%s) = %v, want %v", at, got, open)
		}
	}
	t.Logf("Europe/Paris for %d years: %d offsets, %d bytes of updater.yaml", zoneYears, len(w.Changes), len(data))

	for name, c := range map[string]struct{ yaml, want string }{
		"bad day":    {"  window: {days: [monday], from: \"02:00\", to: \"05:00\"}\n", `day "monday"`},
		"bad time":   {"  window: {from: \"2am\", to: \"05:00\"}\n", "not HH:MM"},
		"bad zone":   {"  window: {from: \"02:00\", to: \"05:00\", timezone: Europe/Pariss}\n", `timezone "Europe/Pariss"`},
		"changes":    {"  window: {from: \"02:00\", to: \"05:00\", changes: [{at: 0, offset: 3600}]}\n", "written by the build"},
		"long delay": {"  inhibit: {max_delay: 2000h}\n", "max_delay"},
		"unknown":    {"  window: {from: \"02:00\", to: \"05:00\", zone: UTC}\n", "zone"},
	} {
		_, err := Parse("small.yaml", []byte(good+withUpdater+c.yaml), root, "")
		if err == nil || !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), "unknown") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", name, err, c.want)
		}
	}
}
