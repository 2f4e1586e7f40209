package servicetest

import (
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestRedis: the server requires its password, and a restart keeps its
// port and data.
func TestRedis(t *testing.T) {
	r := StartRedis(t, "s3cret-redis")
	if got := r.CLI("SET", "k", "v"); got != "OK" {
		t.Fatalf("SET: %q", got)
	}
	r.Stop()
	r.Start()
	if got := r.CLI("GET", "k"); got != "v" {
		t.Fatalf("GET after restart: %q", got)
	}
	r.password = "wrong"
	if got := r.CLI("GET", "k"); !strings.Contains(got, "WRONGPASS") {
		t.Fatalf("GET with a wrong password: %q, want WRONGPASS", got)
	}
}

// TestMosquitto: the broker starts with users and an ACL, and again.
func TestMosquitto(t *testing.T) {
	m := StartMosquitto(t, MosquittoConfig{
		Users: map[string]string{"reader": "pw1", "writer": "pw2"},
		ACL:   map[string][]string{"reader": {"read a/#"}, "writer": {"write a/#"}},
	})
	if !strings.HasPrefix(m.URL(), "tcp://127.0.0.1:") {
		t.Fatalf("URL %q", m.URL())
	}
	m.Stop()
	m.Start()
}

// TestMosquittoACL: the ACL is enforced: what the writer may publish
// reaches the reader, what it may not is dropped, and a wrong password
// is refused.
func TestMosquittoACL(t *testing.T) {
	m := StartMosquitto(t, MosquittoConfig{
		Users: map[string]string{"reader": "pw1", "writer": "pw2"},
		ACL:   map[string][]string{"reader": {"read a/#", "read b/#"}, "writer": {"write a/#"}},
	})
	connect := func(user, pw string) (mqtt.Client, error) {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(user).
			SetUsername(user).SetPassword(pw).SetProtocolVersion(4).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		tok.WaitTimeout(5 * time.Second)
		return c, tok.Error()
	}
	if _, err := connect("writer", "wrong"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	got := make(chan string, 4)
	r, err := connect("reader", "pw1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Disconnect(100)
	if tok := r.Subscribe("#", 1, func(_ mqtt.Client, msg mqtt.Message) { got <- msg.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	w, err := connect("writer", "pw2")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Disconnect(100)
	for _, topic := range []string{"b/denied", "a/allowed"} {
		if tok := w.Publish(topic, 1, false, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	select {
	case topic := <-got:
		if topic != "a/allowed" {
			t.Errorf("received %s, want only a/allowed", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a/allowed never arrived")
	}
	select {
	case topic := <-got:
		t.Errorf("received %s too", topic)
	case <-time.After(200 * time.Millisecond):
	}
}
