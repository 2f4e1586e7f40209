package servicetest

import (
	"strings"
	"testing"
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
