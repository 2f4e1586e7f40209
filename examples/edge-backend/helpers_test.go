package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/internal/servicetest"
)

// The stack's credentials in these tests: distinctive, so that a test can
// search every log and answer for them.
var creds = map[string]string{
	fileRedisPassword: "redis-pw-7f3a9e",
	fileMQTTUser:      "backend-user-51e0",
	fileMQTTPassword:  "mqtt-pw-c41d2b",
	fileAPIToken:      "api-token-9be07a",
}

const sensorUser, sensorPassword = "sensor", "sensor-pw-0a8d"

// writeSecrets writes the secret files (mode 0600) into a new folder.
func writeSecrets(t *testing.T, values map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range values {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// backend is one run of the program, in this process.
type backend struct {
	url    string
	stderr *servicetest.SyncBuffer
	stop   func() error
}

// startBackend runs the backend with args plus -listen on a free port and
// waits until it answers HTTP.
func startBackend(t *testing.T, args ...string) *backend {
	t.Helper()
	url := fmt.Sprintf("127.0.0.1:%d", servicetest.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	b := &backend{url: "http://" + url, stderr: &servicetest.SyncBuffer{}}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append(args, "-listen", url), io.Discard, b.stderr) }()
	var once sync.Once
	var err error
	b.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { b.stop() })
	waitFor(t, "the backend answers HTTP", 5*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("backend exited: %v\n%s", err, b.stderr)
		default:
		}
		code, _ := b.get(t, "/healthz", "")
		return code != 0
	})
	return b
}

// get returns the status and body of a GET (status 0 when it fails).
func (b *backend) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// messages returns the payloads the API serves, newest first.
func (b *backend) messages(t *testing.T) []string {
	t.Helper()
	code, body := b.get(t, "/api/messages", creds[fileAPIToken])
	if code != http.StatusOK {
		return nil
	}
	var r struct{ Messages []Message }
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/api/messages: %v: %s", err, body)
	}
	var out []string
	for _, m := range r.Messages {
		out = append(out, m.Topic+"="+m.Payload)
	}
	return out
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("no %s after %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
}

// publish sends one QoS 1 message as the sensor user.
func publish(t *testing.T, broker, topic, payload string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("test-sensor").
		SetUsername(sensorUser).SetPassword(sensorPassword).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("sensor connect to %s: %v", broker, tok.Error())
	}
	defer c.Disconnect(100)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// stack starts Mosquitto (the backend's user may read edge/#, the
// sensor's may write it) and Redis with the test's credentials.
func stack(t *testing.T) (*servicetest.Mosquitto, *servicetest.Redis) {
	t.Helper()
	m := servicetest.StartMosquitto(t, servicetest.MosquittoConfig{
		Users: map[string]string{creds[fileMQTTUser]: creds[fileMQTTPassword], sensorUser: sensorPassword},
		ACL: map[string][]string{
			creds[fileMQTTUser]: {"read edge/#"},
			sensorUser:          {"write edge/#"},
		},
	})
	return m, servicetest.StartRedis(t, creds[fileRedisPassword])
}

// assertNoSecrets fails if any credential appears in text.
func assertNoSecrets(t *testing.T, where, text string) {
	t.Helper()
	for name, v := range creds {
		if strings.Contains(text, v) {
			t.Errorf("%s shows the secret %s:\n%s", where, name, text)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
