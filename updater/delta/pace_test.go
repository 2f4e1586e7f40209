package delta

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/install/installtest"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// throttled answers range requests from data through a Throttle; it
// refuses more than 1000 requests (the test's cap).
type throttled struct {
	data []byte
	th   *installtest.Throttle
}

func (f throttled) Range(_ context.Context, off, n int64) (io.ReadCloser, error) {
	if f.th.Conns() >= 1000 {
		return nil, installtest.ErrCap
	}
	return f.th.Wrap(io.NopCloser(bytes.NewReader(f.data[off : off+n]))), nil
}

func (f throttled) String() string { return "throttled" }

// TestDripFeedingRanges: range requests answered one byte per
// connection or one byte every 150 ms end
// within the slowest link's grace with ErrTooSlow, nothing unverified
// written; at 64 kbit/s the chunks arrive and verify.
func TestDripFeedingRanges(t *testing.T) {
	old, new := pair()
	ix := index(t, new)
	for _, tc := range []struct {
		name  string
		th    *installtest.Throttle
		whole bool
	}{
		{"one byte per connection", &installtest.Throttle{Burst: 1, PerConn: 1}, false},
		{"one byte per 150 ms", &installtest.Throttle{Burst: 1, Delay: 150 * time.Millisecond, MaxTime: time.Hour}, false},
		{"64 kbit/s", &installtest.Throttle{Rate: install.MinRate, MaxTime: 24 * time.Hour}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := installtest.NewClock(t0)
			th := tc.th
			th.Clock = clk
			src := []Source{{Name: "old", R: bytes.NewReader(old), Index: index(t, old)}}
			o := fast
			o.Attempts = 5
			o.Backoff = time.Microsecond
			o.Pace = &install.Pace{Now: clk.Now}
			plan, res, err := Write(context.Background(), artifact(new), Inputs{Index: ix, Sources: src, Fetcher: throttled{new, th}}, newSink(t, new), Policy{}, o)
			took := clk.Now().Sub(t0)
			if tc.whole {
				if err != nil {
					t.Fatalf("%d bytes to fetch at 64 kbit/s: %v after %s", plan.Fetch, err, took)
				}
				return
			}
			if errors.Is(err, installtest.ErrCap) || th.Conns() > 10 || took > install.Grace+time.Minute {
				t.Fatalf("%d requests, %s: %v", th.Conns(), took, err)
			}
			if !errors.Is(err, install.ErrTooSlow) {
				t.Fatalf("%v, want ErrTooSlow", err)
			}
			t.Logf("%d requests, %d bytes written, %s: %v", th.Conns(), res.Fetched, took, err)
		})
	}
}
