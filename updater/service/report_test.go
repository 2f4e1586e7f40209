package service

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/config"
	wire "github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/state"
)

// TestReportNoBroker: an image without a report block, or a device
// without credentials, runs without reporting and without an error.
func TestReportNoBroker(t *testing.T) {
	dir := t.TempDir()
	a := &agent.Agent{}
	a.Store = state.File{Path: filepath.Join(dir, "state.json")}
	for _, cfg := range []config.Config{{}, {Report: &config.Report{Broker: "tcp://127.0.0.1:1"}}} {
		r := startReport(context.Background(), a, cfg, filepath.Join(dir, "none.yaml"), filepath.Join(dir, "state.json"), nil)
		if r.pub != nil {
			t.Fatalf("%+v: a publisher", cfg.Report)
		}
		r.watch(a)
		r.changed()
		if _, ok := a.Store.(state.File); !ok {
			t.Fatal("the store was wrapped without a publisher")
		}
	}
}

// TestReportOnSave: with a broker and provisioned credentials, each save
// of the agent's state file is reported: here the trial the agent arms
// just before it reboots.
func TestReportOnSave(t *testing.T) {
	m := servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users:    map[string]string{"box-1": "p1", "ops": "po"},
		ACL:      map[string][]string{"ops": {"read pibake/devices/#"}},
		Patterns: []string{"write pibake/devices/%u/#"},
	})
	dir := t.TempDir()
	cred := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(cred, []byte("user: box-1\npassword: p1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(dir, "updater.json")
	a := &agent.Agent{}
	a.Booted = "a"
	a.Store = state.File{Path: statePath}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.Config{Channel: "stable", Board: "pi4", Image: "demo", Version: "1.0", Report: &config.Report{Broker: m.URL()}}
	r := startReport(ctx, a, cfg, cred, statePath, nil)
	if r.pub == nil {
		t.Fatal("no publisher")
	}
	r.watch(a)

	got := make(chan wire.State, 16)
	ops := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetUsername("ops").SetPassword("po").SetClientID("ops"))
	if tok := ops.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer ops.Disconnect(100)
	ops.Subscribe(wire.StateTopic("pibake", "box-1"), 1, func(_ mqtt.Client, msg mqtt.Message) {
		var s wire.State
		if json.Unmarshal(msg.Payload(), &s) == nil {
			got <- s
		}
	}).WaitTimeout(10 * time.Second)

	// The first report (no state file yet), then the save alone must
	// bring the next: the heartbeat is 15 minutes away.
	r.changed()
	select {
	case s := <-got:
		if s.Last != nil {
			t.Fatalf("first report %+v, want no update yet", s)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no first report in 20 s")
	}
	trial := state.State{Format: state.Format, Trial: &state.Trial{Slot: "b", Release: state.Release{Image: "demo", Version: "1.1", Serial: 4}, Since: time.Now()}}
	if err := a.Store.Save(trial); err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(20 * time.Second); ; {
		select {
		case s := <-got:
			if s.Last != nil && s.Last.Result == wire.ResultInProgress && s.Last.Version == "1.1" {
				return
			}
		case <-deadline:
			t.Fatal("the armed trial was not reported in 20 s")
		}
	}
}
