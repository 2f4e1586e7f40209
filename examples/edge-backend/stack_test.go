package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStack runs the backend against Debian's Mosquitto and Redis: a
// published message is stored in Redis and served as JSON with the token
// only; health follows Redis and the broker going away and coming back;
// messages sent while Redis or the backend itself is down are stored
// once they are back; no credential is ever printed.
func TestStack(t *testing.T) {
	mosq, redis := stack(t)
	secretsDir := writeSecrets(t, creds)
	args := []string{"-mqtt", mosq.URL(), "-redis", redis.Addr(), "-secrets", secretsDir, "-keep", "10"}
	t.Setenv("EDGE_VERSION", "2.0.0")
	b := startBackend(t, args...)
	waitFor(t, "healthy backend", 5*time.Second, func() bool { code, _ := b.get(t, "/healthz", ""); return code == http.StatusOK })
	if _, body := b.get(t, "/healthz", ""); !strings.Contains(body, `"version":"2.0.0"`) {
		t.Errorf("/healthz: %s, want EDGE_VERSION in it", body)
	}

	publish(t, mosq.URL(), "edge/temp", "21.5")
	waitFor(t, "the message in the API", 5*time.Second, func() bool { return contains(b.messages(t), "edge/temp=21.5") })
	if got := redis.CLI("LRANGE", "edge:messages", "0", "-1"); !strings.Contains(got, `"topic":"edge/temp","payload":"21.5"`) {
		t.Errorf("Redis holds %q, want the message", got)
	}

	for _, token := range []string{"", "wrong-token", creds[fileAPIToken] + "x"} {
		code, body := b.get(t, "/api/messages", token)
		if code != http.StatusUnauthorized || strings.Contains(body, "21.5") {
			t.Errorf("token %q: %d %s, want 401 without the data", token, code, body)
		}
	}

	redis.Stop()
	waitFor(t, "unhealthy backend without Redis", 5*time.Second, func() bool {
		code, body := b.get(t, "/healthz", "")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"redis":"unreachable"`)
	})
	if code, _ := b.get(t, "/api/messages", creds[fileAPIToken]); code != http.StatusServiceUnavailable {
		t.Errorf("messages without Redis: %d, want 503", code)
	}
	publish(t, mosq.URL(), "edge/temp", "while-redis-was-down")
	redis.Start()
	waitFor(t, "healthy backend with Redis back", 5*time.Second, func() bool { code, _ := b.get(t, "/healthz", ""); return code == http.StatusOK })
	waitFor(t, "the message sent while Redis was down", 5*time.Second, func() bool {
		return contains(b.messages(t), "edge/temp=while-redis-was-down")
	})

	mosq.Stop()
	waitFor(t, "unhealthy backend without the broker", 5*time.Second, func() bool {
		code, body := b.get(t, "/healthz", "")
		return code == http.StatusServiceUnavailable && strings.Contains(body, `"mqtt":"disconnected"`)
	})
	mosq.Start()
	waitFor(t, "healthy backend with the broker back", 10*time.Second, func() bool { code, _ := b.get(t, "/healthz", ""); return code == http.StatusOK })

	// An update restarts the backend: the broker keeps its session and
	// queues what arrives meanwhile.
	if err := b.stop(); err != nil {
		t.Fatalf("backend stop: %v", err)
	}
	log := b.stderr.String()
	publish(t, mosq.URL(), "edge/door", "opened-while-backend-was-down")
	b2 := startBackend(t, args...)
	waitFor(t, "the message sent while the backend was down", 10*time.Second, func() bool {
		return contains(b2.messages(t), "edge/door=opened-while-backend-was-down")
	})
	if got := b2.messages(t); len(got) != 3 {
		t.Errorf("messages after restart: %q, want 3", got)
	}
	b2.stop()

	for _, want := range []string{"redis", "mqtt connection lost", "storing messages again"} {
		if !strings.Contains(log, want) {
			t.Errorf("the backend's log lacks %q:\n%s", want, log)
		}
	}
	assertNoSecrets(t, "the backend's log", log+b2.stderr.String())
	t.Logf("backend log:\n%s", log)
}
