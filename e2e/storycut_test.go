package e2e

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// storyCut is one real power cut in a story (make test's sample of the
// make soak campaign): armed by the agent's "installing" line, made at the
// first console line a seeded random delay later, unless the agent said
// "installed" first (then the moment fell after the install and no cut is
// made: the story goes on, and the test says so). PIBAKE_E2E_CUT_SEED
// replays a run's moment; the seed is printed.
type storyCut struct {
	t         *testing.T
	seed      int64
	delay     time.Duration
	armedAt   time.Duration // when "installing" was seen; -1: not yet
	at        time.Duration // when the cut was made; 0: not made
	installed bool
}

func newStoryCut(t *testing.T, max time.Duration) *storyCut {
	seed := time.Now().UnixNano() % 1e9
	if s := os.Getenv("PIBAKE_E2E_CUT_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("PIBAKE_E2E_CUT_SEED=%q: want a number", s)
		}
		seed = n
	}
	c := &storyCut{t: t, seed: seed, armedAt: -1, delay: time.Duration(rand.New(rand.NewSource(seed)).Int63n(int64(max)))}
	t.Logf("power cut: %s after the agent starts installing v2 (PIBAKE_E2E_CUT_SEED=%d replays it)", c.delay.Round(time.Millisecond), seed)
	fmt.Fprintf(os.Stderr, "e2e: TestUpdate's power cut: PIBAKE_E2E_CUT_SEED=%d\n", seed)
	return c
}

// now says whether to cut at this console line.
func (c *storyCut) now(line string, at time.Duration) bool {
	switch {
	case c.at != 0 || c.installed:
		return false
	case strings.Contains(line, "msg=installed"):
		c.installed = true
		if c.armedAt >= 0 {
			c.t.Logf("power cut: the install ended %s after it began, before the cut's moment: no cut in this run", (at - c.armedAt).Round(time.Second))
		}
		return false
	case c.armedAt < 0 && strings.Contains(line, "msg=installing"):
		c.armedAt = at
		return false
	case c.armedAt >= 0 && at-c.armedAt >= c.delay:
		c.at = at
		c.t.Logf("power cut at %s, %s into the install, after the line %q", at.Round(time.Second), (at - c.armedAt).Round(time.Second), line)
		return true
	}
	return false
}
