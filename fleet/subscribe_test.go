package fleet

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/updater/report"
)

// TestSubscribe publishes retained reports as two devices would, one of
// them malformed, and reads them back through a real Mosquitto.
func TestSubscribe(t *testing.T) {
	m := servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users: map[string]string{"box-1": "p1", "ops": "po"},
		ACL: map[string][]string{
			"box-1": {"write pibake/devices/box-1/#"},
			"ops":   {"read pibake/devices/#"},
		},
	})
	dev := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("box-1").SetUsername("box-1").SetPassword("p1"))
	if err := waitToken(dev.Connect(), "connect"); err != nil {
		t.Fatal(err)
	}
	s := report.State{Format: report.Format, Device: "box-1", Channel: "stable", Board: "pi4", Image: "demo", Version: "1.0"}
	b, _ := json.Marshal(s)
	for topic, payload := range map[string][]byte{
		report.StateTopic("pibake", "box-1"):  b,
		report.OnlineTopic("pibake", "box-1"): []byte("1"),
	} {
		if err := waitToken(dev.Publish(topic, 1, true, payload), "publish"); err != nil {
			t.Fatal(err)
		}
	}
	dev.Disconnect(100)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []Event
	err := Subscribe(ctx, Broker{URL: m.URL(), Username: "ops", Password: "po"}, func(ev Event) {
		got = append(got, ev)
		if len(got) == 2 {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var state, online bool
	for _, ev := range got {
		state = state || (ev.State != nil && ev.State.Version == "1.0")
		online = online || (ev.Online != nil && *ev.Online)
	}
	if !state || !online {
		t.Fatalf("events %+v: want box-1's state and online flag", got)
	}
	if err := Subscribe(context.Background(), Broker{URL: m.URL(), Username: "ops", Password: "wrong"}, func(Event) {}); err == nil {
		t.Fatal("a wrong password connected")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for topic, payload := range map[string]string{
		"pibake/devices/box-1/state":  `{"format":1,"device":"box-2"}`,
		"pibake/devices/box-1/online": "yes",
		"pibake/devices/box-1/x":      "1",
	} {
		if ev := decode("pibake", topic, []byte(payload)); ev.Err == nil {
			t.Errorf("%s %q: accepted %+v", topic, payload, ev)
		}
	}
}
