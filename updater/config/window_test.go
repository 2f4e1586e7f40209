package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func paris(t *testing.T) []ZoneChange {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no zone rules on this host: %v", err)
	}
	return ZoneChanges(loc, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 40)
}

func TestWindowOpenAndNext(t *testing.T) {
	w := Window{Days: []string{"mon", "tue", "wed", "thu", "fri"}, From: "02:00", To: "05:00", Timezone: "Europe/Paris", Changes: paris(t)}
	if err := w.Check(); err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		at   string
		open bool
		next string
	}{
		// Winter: Paris is UTC+1.
		{"2026-12-07T01:30:00Z", true, "2026-12-07T01:30:00Z"},  // Mon 02:30 Paris
		{"2026-12-07T00:59:00Z", false, "2026-12-07T01:00:00Z"}, // Mon 01:59 Paris
		{"2026-12-07T04:00:00Z", false, "2026-12-08T01:00:00Z"}, // Mon 05:00 Paris: closed
		{"2026-12-12T01:30:00Z", false, "2026-12-14T01:00:00Z"}, // Saturday: next Monday
		// Summer: UTC+2.
		{"2026-07-06T00:30:00Z", true, "2026-07-06T00:30:00Z"},  // Mon 02:30 Paris
		{"2026-07-06T01:30:00Z", true, "2026-07-06T01:30:00Z"},  // Mon 03:30 Paris
		{"2026-07-06T03:30:00Z", false, "2026-07-07T00:00:00Z"}, // Mon 05:30 Paris
	} {
		at := utc(c.at)
		if got := w.Open(at); got != c.open {
			t.Errorf("Open(%s) = %v, want %v", c.at, got, c.open)
		}
		if got := w.Next(at); !got.Equal(utc(c.next)) {
			t.Errorf("Next(%s) = %s, want %s", c.at, got.UTC().Format(time.RFC3339), c.next)
		}
	}
	// Across midnight, belonging to the day it opens: Friday 23:00 to
	// Saturday 01:00 (UTC), and not Saturday night.
	night := Window{Days: []string{"fri"}, From: "23:00", To: "01:00"}
	for at, open := range map[string]bool{"2026-12-11T23:30:00Z": true, "2026-12-12T00:30:00Z": true, "2026-12-12T23:30:00Z": false, "2026-12-13T00:30:00Z": false} {
		if got := night.Open(utc(at)); got != open {
			t.Errorf("night Open(%s) = %v, want %v", at, got, open)
		}
	}
	if got := (Window{From: "00:00", To: "24:00"}).Open(utc("2026-12-13T23:59:00Z")); !got {
		t.Error("a whole-day window is closed")
	}
}

func TestWindowCheck(t *testing.T) {
	for name, w := range map[string]Window{
		"day":       {Days: []string{"monday"}, From: "02:00", To: "03:00"},
		"from":      {From: "2:00", To: "03:00"},
		"to":        {From: "02:00", To: "25:00"},
		"empty":     {From: "02:00", To: "02:00"},
		"minutes":   {From: "02:60", To: "03:00"},
		"sign":      {From: "+2:00", To: "03:00"},
		"no from":   {To: "03:00"},
		"unordered": {From: "02:00", To: "03:00", Changes: []ZoneChange{{At: 2}, {At: 1}}},
	} {
		if err := w.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// The window and the inhibit's bound come from the image: the writable
// data partition cannot move them, and an image naming a zone without
// its offsets is refused rather than read as UTC.
func TestWindowFromTheImageOnly(t *testing.T) {
	dir := t.TempDir()
	img, over := filepath.Join(dir, "updater.yaml"), filepath.Join(dir, "override.yaml")
	base := "server: http://x\nchannel: s\nboard: qemu\nimage: demo\nbuilt: 1796083200\nkeys: [RWSkey]\n"
	os.WriteFile(img, []byte(base+"window: {days: [mon], from: \"02:00\", to: \"05:00\"}\ninhibit: {max_delay: 12h}\n"), 0o644)
	c, err := Load(img, over)
	if err != nil || c.Window == nil || c.Window.From != "02:00" || c.Inhibit.Max() != 12*time.Hour {
		t.Fatalf("%+v %v", c, err)
	}
	for _, body := range []string{"window: {from: \"00:00\", to: \"24:00\"}\n", "inhibit: {max_delay: 1s}\n"} {
		os.WriteFile(over, []byte(body), 0o644)
		if _, err := Load(img, over); err == nil || !strings.Contains(err.Error(), "comes from the image") {
			t.Errorf("override %q: %v", body, err)
		}
	}
	os.Remove(over)
	os.WriteFile(img, []byte(base+"window: {from: \"02:00\", to: \"05:00\", timezone: Europe/Paris}\n"), 0o644)
	if _, err := Load(img, over); err == nil || !strings.Contains(err.Error(), "rebuild the image") {
		t.Errorf("zone without offsets: %v", err)
	}
	os.WriteFile(img, []byte(base+"inhibit: {max_delay: 1000h}\n"), 0o644)
	if _, err := Load(img, over); err == nil {
		t.Error("a 1000h inhibit bound accepted")
	}
}
