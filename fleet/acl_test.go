package fleet

import (
	"context"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/updater/report"
)

// TestBrokerKeepsDevicesApart runs the broker configuration of
// docs/fleet.md (TLS, a password file, pattern ACLs) and proves that
// device A can neither publish as device B (the operator never sees it)
// nor read B's topics, while the operator reads all.
func TestBrokerKeepsDevicesApart(t *testing.T) {
	m := fleetBroker(t, true, "box-a", "box-b")
	a, b := connectAs(t, m, "box-a"), connectAs(t, m, "box-b")
	publishRaw(t, b, report.StateTopic("pibake", "box-b"), stateOf("box-b", "1.0", time.Now(), nil))

	// A listens to B's topics, and to everyone's.
	var mu sync.Mutex
	var leaked []string
	for _, filter := range []string{"pibake/devices/box-b/#", "pibake/devices/#", "#"} {
		tok := a.Subscribe(filter, 1, func(_ mqtt.Client, msg mqtt.Message) {
			mu.Lock()
			leaked = append(leaked, msg.Topic())
			mu.Unlock()
		})
		if err := waitToken(tok, "subscribe"); err != nil {
			t.Fatal(err)
		}
	}
	// A writes as B: a forged state and a forged will.
	forged := stateOf("box-b", "6.6.6", time.Now(), nil)
	publishRaw(t, a, report.StateTopic("pibake", "box-b"), forged)
	publishRaw(t, a, report.OnlineTopic("pibake", "box-b"), "0")
	// And B publishes again, which A must not see either.
	publishRaw(t, b, report.StateTopic("pibake", "box-b"), stateOf("box-b", "1.1", time.Now(), nil))

	st, err := Collect(context.Background(), Broker{URL: m.URL(), CAFile: m.CAFile, Username: "ops", Password: "po"}, StatusOptions{Quiet: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Devices) != 1 || st.Devices[0].Name != "box-b" || st.Devices[0].State.Version != "1.1" || st.Devices[0].Online != nil {
		t.Fatalf("the operator sees %+v, want only box-b's own 1.1 and no forged flag", st.Devices)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Fatalf("box-a read %v", leaked)
	}

	// Without TLS's CA the operator does not connect.
	if _, err := Collect(context.Background(), Broker{URL: m.URL(), Username: "ops", Password: "po"}, StatusOptions{}); err == nil {
		t.Fatal("connected without trusting the broker's CA")
	}
}
