package publish

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

// WaveSpec is one wave as the publisher gives it: a fraction of the
// devices, from After past the publish on.
type WaveSpec struct {
	Fraction float64
	After    time.Duration
}

// WavesSyntax is how --waves is written.
const WavesSyntax = "PERCENT%@DELAY,...: e.g. 10%@0h,50%@24h,100%@72h; the first wave starts at 0h, each later one has a larger percent and a later delay (a Go duration: 90m, 24h)"

// ParseWaves reads --waves: comma-separated PERCENT%@DELAY.
func ParseWaves(s string) ([]WaveSpec, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("--waves %q: %s; write %s", s, fmt.Sprintf(format, a...), WavesSyntax)
	}
	var out []WaveSpec
	for i, part := range strings.Split(s, ",") {
		pct, delay, ok := strings.Cut(strings.TrimSpace(part), "@")
		num, isPct := strings.CutSuffix(pct, "%")
		if !ok || !isPct {
			return nil, bad("wave %d (%q) is not PERCENT%%@DELAY", i+1, part)
		}
		p, err := strconv.ParseFloat(num, 64)
		if err != nil || !(p > 0 && p <= 100) {
			return nil, bad("wave %d: percent %q, want more than 0 and at most 100", i+1, num)
		}
		d, err := time.ParseDuration(delay)
		if err != nil || d < 0 {
			return nil, bad("wave %d: delay %q, want a duration of 0 or more", i+1, delay)
		}
		w := WaveSpec{Fraction: p / 100, After: d}
		switch {
		case i == 0 && d != 0:
			return nil, bad("the first wave starts when the release is published: give it @0h")
		case i > 0 && (w.Fraction <= out[i-1].Fraction || w.After <= out[i-1].After):
			return nil, bad("wave %d must have a larger percent and a later delay than wave %d", i+1, i)
		case len(out) == channel.MaxWaves:
			return nil, bad("more than %d waves", channel.MaxWaves)
		}
		out = append(out, w)
	}
	return out, nil
}

// channelWaves are the waves of a document signed at now.
func channelWaves(specs []WaveSpec, now time.Time) []channel.Wave {
	var out []channel.Wave
	for _, s := range specs {
		out = append(out, channel.Wave{Fraction: s.Fraction, From: now.Add(s.After).UTC().Truncate(time.Second)})
	}
	return out
}

// FormatWaves writes waves for a person: 10% from 2026-12-06T22:00:00Z, ...
func FormatWaves(ws []channel.Wave) string {
	var parts []string
	for _, w := range ws {
		parts = append(parts, fmt.Sprintf("%s%% from %s", strconv.FormatFloat(w.Fraction*100, 'f', -1, 64), w.From.UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, ", ")
}
