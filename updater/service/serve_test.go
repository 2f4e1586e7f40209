package service

import (
	"errors"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/config"
)

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
