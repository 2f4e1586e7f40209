package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/config"
)

// TestWatchdogFollowsProgress: the watchdog is fed only while the loop
// beats or a bounded step is within its bound.
func TestWatchdogFollowsProgress(t *testing.T) {
	every := 2 * time.Minute
	var w watchdog
	w.beat()
	now := time.Now()
	if !w.alive(now, every) {
		t.Error("just beat: not alive")
	}
	if w.alive(now.Add(every), every) {
		t.Error("a loop stuck for a whole interval is still fed")
	}
	w.busy(5 * time.Minute)
	if !w.alive(now.Add(4*time.Minute), every) {
		t.Error("a health check within its deadline starves the watchdog")
	}
	if w.alive(now.Add(6*time.Minute), every) {
		t.Error("a step past its bound is still fed")
	}
	w.busy(0)
	if w.alive(now.Add(4*time.Minute), every) {
		t.Error("a finished step still counts as busy")
	}
}

func TestSafeText(t *testing.T) {
	var b strings.Builder
	safeText{&b}.Write([]byte("last error: GET x: HTTP 500 \x1b]0;pwned\x07\x1b[2J\u009b6n ok\tübel\n"))
	if got := b.String(); got != "last error: GET x: HTTP 500 ?]0;pwned??[2J?6n ok\tübel\n" {
		t.Errorf("%q", got)
	}
}

// TestReloadKeepsTheLastGood: a refused override leaves the running
// configuration whole (its poll interval above all: a zero one would spin
// the loop).
func TestReloadKeepsTheLastGood(t *testing.T) {
	a := agent.New(agent.Config{Channel: "stable"}, agent.Ports{})
	cfg := config.Config{Channel: "stable", Poll: 15 * time.Minute}
	bad := func() (config.Config, error) { return config.Config{}, errors.New("keys cannot be overridden") }
	build := func(c config.Config) (*agent.Agent, error) {
		return agent.New(agent.Config{Channel: c.Channel}, agent.Ports{}), nil
	}
	if err := reload(a, &cfg, bad, build); err == nil || cfg.Poll != 15*time.Minute || a.Channel != "stable" {
		t.Errorf("after a bad override: %v, poll %s, channel %s", err, cfg.Poll, a.Channel)
	}
	good := func() (config.Config, error) { return config.Config{Channel: "beta", Poll: 2 * time.Minute}, nil }
	if err := reload(a, &cfg, good, build); err != nil || cfg.Poll != 2*time.Minute || a.Channel != "beta" {
		t.Errorf("after a good override: %v, poll %s, channel %s", err, cfg.Poll, a.Channel)
	}
}
