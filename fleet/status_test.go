package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/report"
)

// fleetBroker is a Mosquitto with the ACL of docs/fleet.md: each device
// writes its own topics only, the operator reads them all.
func fleetBroker(t *testing.T, tls bool, devices ...string) *servicetest.Mosquitto {
	users := map[string]string{"ops": "po"}
	for _, d := range devices {
		users[d] = "pw-" + d
	}
	return servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users:    users,
		ACL:      map[string][]string{"ops": {"read pibake/devices/#"}},
		Patterns: []string{"write pibake/devices/%u/#"},
		TLS:      tls,
	})
}

func connectAs(t *testing.T, m *servicetest.Mosquitto, user string) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(user).SetUsername(user).SetPassword("pw-" + user)
	if m.CAFile != "" {
		b := Broker{CAFile: m.CAFile, URL: m.URL()}
		bo, err := b.options()
		if err != nil {
			t.Fatal(err)
		}
		o.SetTLSConfig(bo.TLSConfig)
	}
	c := mqtt.NewClient(o)
	if err := waitToken(c.Connect(), "connect as "+user); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func publishRaw(t *testing.T, c mqtt.Client, topic string, payload any) {
	t.Helper()
	if err := waitToken(c.Publish(topic, 1, true, payload), "publish "+topic); err != nil {
		t.Fatal(err)
	}
}

func stateOf(device, version string, at time.Time, last *report.Attempt) []byte {
	b, _ := json.Marshal(report.State{Format: report.Format, Device: device, Channel: "stable", Board: "pi4", Image: "demo",
		Version: version, Slot: "a", Time: at, Heartbeat: 60, Last: last})
	return b
}

// TestCollect: status lists each device once with its last update and
// why, takes the silent and the disconnected ones as offline, lists a
// malformed report as such, and filters.
func TestCollect(t *testing.T) {
	m := fleetBroker(t, false, "box-1", "box-2", "box-3", "box-4")
	now := time.Now()
	for dev, payload := range map[string][]byte{
		"box-1": stateOf("box-1", "1.1", now, &report.Attempt{Version: "1.1", Result: report.ResultCommitted}),
		"box-2": stateOf("box-2", "1.0", now, &report.Attempt{Version: "1.1", Result: report.ResultRolledBack, Check: "hello.service", Reason: "inactive"}),
		"box-3": []byte(`{"format":1,"device":"box-3","version":"\u001b[2J`),
		"box-4": stateOf("box-4", "1.0", now.Add(-time.Hour), nil),
	} {
		c := connectAs(t, m, dev)
		publishRaw(t, c, report.StateTopic("pibake", dev), payload)
		publishRaw(t, c, report.OnlineTopic("pibake", dev), map[bool]string{true: "0", false: "1"}[dev == "box-2"])
	}
	st, err := Collect(context.Background(), Broker{URL: m.URL(), Username: "ops", Password: "po"}, StatusOptions{Quiet: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 4 {
		t.Fatalf("%d devices: %+v", len(st.Devices), st.Devices)
	}
	d := st.Devices
	switch {
	case d[0].Offline != "" || d[0].State.Last.Result != report.ResultCommitted:
		t.Errorf("box-1: %+v", d[0])
	case !strings.Contains(d[1].Offline, "last will") || d[1].State.Last.Check != "hello.service":
		t.Errorf("box-2: %+v", d[1])
	case d[2].Error == "" || d[2].State != nil:
		t.Errorf("box-3: %+v", d[2])
	case !strings.Contains(d[3].Offline, "no report for"):
		t.Errorf("box-4: %+v", d[3])
	}
	var out bytes.Buffer
	if err := Print(&out, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rolled-back 1.1", "hello.service: inactive", "malformed", "offline: disconnected", "4 devices"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("an escape reached the table:\n%q", out.String())
	}
	for f, want := range map[Filter][]string{
		{Result: report.ResultRolledBack}: {"box-2"},
		{Result: "offline"}:               {"box-2", "box-4"},
		{Result: "malformed"}:             {"box-3"},
		{Result: "none"}:                  {"box-4"},
		{Version: "1.0"}:                  {"box-2", "box-4"},
		{Channel: "beta"}:                 nil,
	} {
		var got []string
		for _, d := range f.Apply(st).Devices {
			got = append(got, d.Name)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("filter %+v: %v, want %v", f, got, want)
		}
	}
}

// TestCollectFlood: a device that floods its topic cannot keep status
// waiting past MaxWait nor grow it past one entry a device; devices past
// the cap are counted, not kept.
func TestCollectFlood(t *testing.T) {
	m := fleetBroker(t, false, "noisy", "box-1")
	publishRaw(t, connectAs(t, m, "box-1"), report.StateTopic("pibake", "box-1"), stateOf("box-1", "1.0", time.Now(), nil))
	noisy := connectAs(t, m, "noisy")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			noisy.Publish(report.StateTopic("pibake", "noisy"), 0, false, stateOf("noisy", fmt.Sprint(i), time.Now(), nil))
			noisy.Publish(fmt.Sprintf("pibake/devices/noisy-%d/state", i), 0, false, "x") // refused by the ACL
		}
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	st, err := Collect(context.Background(), Broker{URL: m.URL(), Username: "ops", Password: "po"}, StatusOptions{Quiet: time.Second, MaxWait: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("status took %s with a flooding device", d)
	}
	if len(st.Devices) != 2 || !strings.Contains(st.Busy, "noisy") {
		t.Fatalf("devices %d, busy %q: %+v", len(st.Devices), st.Busy, st.Devices)
	}
	cancel()

	// The cap: one kept, the other counted.
	publishRaw(t, noisy, report.StateTopic("pibake", "noisy"), stateOf("noisy", "1.0", time.Now(), nil))
	st, err = Collect(context.Background(), Broker{URL: m.URL(), Username: "ops", Password: "po"}, StatusOptions{Quiet: 300 * time.Millisecond, MaxDevices: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || st.Dropped == 0 {
		t.Fatalf("cap 1: %d devices, %d dropped", len(st.Devices), st.Dropped)
	}
}
