package report

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func sample() State {
	return State{Format: Format, Device: "box-1", Channel: "stable", Board: "pi4", Image: "demo", Version: "1.2.0",
		Serial: 3, Slot: "a", BootCount: 2, Agent: "1.2.0", Time: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
		Last: &Attempt{Image: "demo", Version: "1.3.0", Serial: 4, Result: ResultRolledBack, Check: "hello.service", Reason: "inactive"}}
}

func TestParseRoundTrip(t *testing.T) {
	b, _ := json.Marshal(sample())
	s, err := Parse("box-1", b)
	if err != nil || s.Last.Result != ResultRolledBack || s.Version != "1.2.0" {
		t.Fatalf("Parse = %+v, %v", s, err)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, mut := range map[string]func(*State){
		"other device": func(s *State) { s.Device = "box-2" },
		"format":       func(s *State) { s.Format = 2 },
		"slot":         func(s *State) { s.Slot = "a/b" },
		"result":       func(s *State) { s.Last.Result = "great" },
		"long":         func(s *State) { s.Version = strings.Repeat("v", 200) },
		"negative":     func(s *State) { s.Last.BytesDownloaded = -1 },
	} {
		s := sample()
		mut(&s)
		b, _ := json.Marshal(s)
		if _, err := Parse("box-1", b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Parse("box-1", make([]byte, MaxSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized: %v", err)
	}
}

func TestTopics(t *testing.T) {
	d, k, err := SplitTopic("pibake", StateTopic("pibake", "box-1"))
	if err != nil || d != "box-1" || k != "state" {
		t.Fatalf("SplitTopic = %q %q %v", d, k, err)
	}
	for _, bad := range []string{"pibake/devices/+/state", "pibake/devices/a/b/state", "other/devices/a/state", "pibake/devices/a/log"} {
		if _, _, err := SplitTopic("pibake", bad); err == nil {
			t.Errorf("SplitTopic(%q) accepted", bad)
		}
	}
	if CheckDevice("#") == nil || CheckDevice("box-1") != nil {
		t.Error("CheckDevice")
	}
}

func FuzzParse(f *testing.F) {
	b, _ := json.Marshal(sample())
	f.Add(b)
	f.Add([]byte(`{"format":1,"device":"box-1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse("box-1", b)
		if err == nil && (s.Device != "box-1" || s.Format != Format) {
			t.Fatalf("accepted %+v", s)
		}
	})
}
