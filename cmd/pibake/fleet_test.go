package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/fleet"
	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/report"
)

// TestFleetStatus: pibake fleet status reads the broker named by the
// environment (as CI gives it) or the flags, prints the table and JSON,
// and filters.
func TestFleetStatus(t *testing.T) {
	m := servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users:    map[string]string{"box-1": "p1", "ops": "po"},
		ACL:      map[string][]string{"ops": {"read pibake/devices/#"}},
		Patterns: []string{"write pibake/devices/%u/#"},
	})
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("box-1").SetUsername("box-1").SetPassword("p1"))
	if tok := dev.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	b, _ := json.Marshal(report.State{Format: report.Format, Device: "box-1", Channel: "stable", Board: "pi4", Version: "1.0", Slot: "a", Time: time.Now(),
		Last: &report.Attempt{Version: "1.1", Result: report.ResultRolledBack, Check: "hello.service", Reason: "inactive"}})
	if tok := dev.Publish(report.StateTopic("pibake", "box-1"), 1, true, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	dev.Disconnect(50)

	t.Setenv("PIBAKE_BROKER", m.URL())
	t.Setenv("PIBAKE_BROKER_USER", "ops")
	t.Setenv("PIBAKE_BROKER_PASSWORD", "po")
	out, _, err := runCmd("fleet", "status", "--quiet", "300ms")
	if err != nil || !strings.Contains(out, "box-1") || !strings.Contains(out, "rolled-back 1.1") || !strings.Contains(out, "hello.service: inactive") {
		t.Fatalf("fleet status: %v\n%s", err, out)
	}
	out, _, err = runCmd("fleet", "status", "--quiet", "300ms", "--json", "--result", "committed")
	var st fleet.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Devices) != 0 {
		t.Fatalf("--result committed: %v\n%s", err, out)
	}

	// The flags win over the environment; the password from a file.
	pw := filepath.Join(t.TempDir(), "ops.pw")
	os.WriteFile(pw, []byte("po\n"), 0o600)
	t.Setenv("PIBAKE_BROKER_PASSWORD", "wrong")
	out, _, err = runCmd("fleet", "status", "--quiet", "300ms", "--json", "--password-file", pw, "--result", "rolled-back")
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Devices) != 1 || st.Devices[0].State.Last.Check != "hello.service" {
		t.Fatalf("--password-file: %v\n%s", err, out)
	}
	if _, _, err := runCmd("fleet", "status", "--quiet", "300ms"); err == nil || !strings.Contains(err.Error(), "check the user, password") {
		t.Fatalf("a wrong password: %v", err)
	}
	if _, _, err := runCmd("fleet", "status", "--result", "great"); exitCode(err) != 2 {
		t.Fatalf("--result great: %v", err)
	}
	t.Setenv("PIBAKE_BROKER", "")
	if _, _, err := runCmd("fleet", "status"); exitCode(err) != 2 || !strings.Contains(err.Error(), "no broker") {
		t.Fatalf("no broker: %v", err)
	}
}
