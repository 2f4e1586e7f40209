package channel

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

func waved() *Document {
	d := doc(3)
	d.Rollout = 0.1
	d.Waves = []Wave{{0.1, now}, {0.5, now.Add(6 * time.Hour)}, {1, now.Add(12 * time.Hour)}}
	return d
}

func TestRolloutAt(t *testing.T) {
	d := waved()
	for _, c := range []struct {
		at   time.Time
		want float64
	}{
		{now.Add(-1000 * time.Hour), 0.1}, // a clock never set: the first wave still applies
		{now, 0.1},
		{now.Add(6*time.Hour - time.Second), 0.1},
		{now.Add(6 * time.Hour), 0.5},
		{now.Add(11 * time.Hour), 0.5},
		{now.Add(12 * time.Hour), 1},
		{now.Add(100 * time.Hour), 1},
	} {
		if got := d.RolloutAt(c.at); got != c.want {
			t.Errorf("at %s: %v, want %v", c.at.Sub(now), got, c.want)
		}
	}
	plain := doc(3)
	plain.Rollout = 0.3
	if got := plain.RolloutAt(now.Add(1000 * time.Hour)); got != 0.3 {
		t.Errorf("without waves: %v, want the rollout 0.3", got)
	}
}

func TestValidateWaves(t *testing.T) {
	if err := waved().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(d *Document){
		"fraction zero":      func(d *Document) { d.Waves[1].Fraction = 0 },
		"fraction above one": func(d *Document) { d.Waves[2].Fraction = 1.5 },
		"narrowing":          func(d *Document) { d.Waves[2].Fraction = 0.4 },
		"same time":          func(d *Document) { d.Waves[1].From = d.Waves[0].From },
		"out of order":       func(d *Document) { d.Waves[1].From = now.Add(-time.Hour) },
		"no time":            func(d *Document) { d.Waves[1].From = time.Time{} },
		"after the expiry":   func(d *Document) { d.Waves[2].From = d.Expires },
		"rollout not first":  func(d *Document) { d.Rollout = 1 },
		"too many":           func(d *Document) { d.Waves = make([]Wave, MaxWaves+1) },
	} {
		d := waved()
		change(d)
		if err := d.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestCompatibleBytes: a document without waves or a halt is written
// exactly as before them, so agents in the field read it; one with them
// is refused by such an agent's strict decoder (it never installs a
// release whose halt or waves it cannot read).
func TestCompatibleBytes(t *testing.T) {
	b, _ := json.Marshal(doc(3))
	if bytes.Contains(b, []byte("waves")) || bytes.Contains(b, []byte("halted")) {
		t.Fatalf("a plain document names the new fields: %s", b)
	}
	type oldDocument struct { // the layout before waves
		Format    int        `json:"format"`
		Channel   string     `json:"channel"`
		Image     string     `json:"image"`
		Version   string     `json:"version"`
		Serial    uint64     `json:"serial"`
		Expires   time.Time  `json:"expires"`
		Boards    []string   `json:"boards"`
		Rollout   float64    `json:"rollout"`
		Artifacts []Artifact `json:"artifacts"`
	}
	for _, d := range []*Document{waved(), func() *Document { d := doc(3); d.Halted = true; return d }()} {
		b, _ := json.Marshal(d)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var old oldDocument
		if err := dec.Decode(&old); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("an agent before waves decoded %s: %v", b, err)
		}
	}
}

func TestSignVerifyHalted(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	d := waved()
	d.Halted = true
	b, s, err := Sign(d, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(b, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 2})
	if err != nil || !got.Halted || len(got.Waves) != 3 || !got.Waves[1].From.Equal(now.Add(6*time.Hour)) {
		t.Fatalf("verify: %+v %v", got, err)
	}
}
