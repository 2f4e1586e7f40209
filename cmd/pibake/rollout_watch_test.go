package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/report"
)

// TestRolloutWatchCLI: pibake rollout watch --once, as a CI job runs it,
// reads a device's retained report of a rolled-back trial from a real
// Mosquitto and halts the channel at --max-failures 1.
func TestRolloutWatchCLI(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd("keygen", "--out", dir, "--name", "fleet"); err != nil {
		t.Fatal(err)
	}
	key, repo := filepath.Join(dir, "fleet.key"), filepath.Join(dir, "repo")
	if _, _, err := runCmd("publish", "--repo", repo, "--channel", "stable", "--key", key, smallBuild(t, "1.0.0", "pi4", "root of 1.0.0")); err != nil {
		t.Fatal(err)
	}
	m := servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users: map[string]string{"box-1": "p1", "ops": "po"},
		ACL:   map[string][]string{"box-1": {"write pibake/devices/box-1/#"}, "ops": {"read pibake/devices/#"}},
	})
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("box-1").SetUsername("box-1").SetPassword("p1"))
	if tok := dev.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	s := report.State{Format: report.Format, Device: "box-1", Channel: "stable", Board: "pi4", Image: "t", Version: "0.9",
		Last: &report.Attempt{Image: "t", Version: "1.0.0", Serial: 1, Result: report.ResultRolledBack, Check: "health", Reason: "hello.service inactive"}}
	b, _ := json.Marshal(s)
	if tok := dev.Publish(report.StateTopic("pibake", "box-1"), 1, true, b); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	dev.Disconnect(100)
	pw := filepath.Join(dir, "ops.pw")
	os.WriteFile(pw, []byte("po\n"), 0o600)
	out, _, err := runCmd("rollout", "watch", "--once", "--repo", repo, "--channel", "stable", "--key", key,
		"--broker", m.URL(), "--broker-user", "ops", "--broker-password-file", pw, "--max-failures", "1")
	if err != nil || !strings.Contains(out, "halted t 1.0.0 on channel stable at serial 2: 1 devices failed it, the --max-failures of 1: box-1 (rolled-back, health: hello.service inactive)") {
		t.Fatalf("rollout watch: %v\n%s", err, out)
	}
	if out, _, err := runCmd("rollout", "status", "--repo", repo, "--channel", "stable", "--key", key); err != nil || !strings.Contains(out, "halted: devices") {
		t.Fatalf("status after the watch: %v\n%s", err, out)
	}
}
