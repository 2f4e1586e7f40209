package servicetest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// MosquittoConfig says who may connect and what each user may do.
type MosquittoConfig struct {
	// Users maps user names to passwords. Anonymous clients are refused.
	Users map[string]string
	// ACL maps user names to their topic rules, each "read TOPIC",
	// "write TOPIC" or "readwrite TOPIC" (mosquitto.conf(5), acl_file).
	// A user without rules may do nothing.
	ACL map[string][]string
}

// Mosquitto is a running broker.
type Mosquitto struct {
	*server
	// Dir holds mosquitto.conf, the password file, the ACL and the
	// persistence folder (data/), which a restart keeps.
	Dir string
}

// URL is the broker's address for MQTT clients: tcp://127.0.0.1:PORT.
func (m *Mosquitto) URL() string { return "tcp://" + m.Addr() }

// StartMosquitto starts Debian's mosquitto on a free port of 127.0.0.1
// with a password file (hashed by mosquitto_passwd), the ACL and
// persistence on, and stops it when the test ends.
func StartMosquitto(t testing.TB, cfg MosquittoConfig) *Mosquitto {
	t.Helper()
	bin := need(t, "mosquitto", "mosquitto")
	passwd := need(t, "mosquitto_passwd", "mosquitto")
	dir := mkdir(t, filepath.Join(t.TempDir(), "mosquitto"))
	mkdir(t, filepath.Join(dir, "data"))

	// The passwords never go on a command line: a plain user:password
	// file is hashed in place (-U).
	var users, acl strings.Builder
	for _, u := range sortedKeys(cfg.Users) {
		if strings.ContainsAny(u, ":\n") || strings.Contains(cfg.Users[u], "\n") {
			t.Fatalf("mosquitto: user %q: no colon or newline in names, no newline in passwords", u)
		}
		fmt.Fprintf(&users, "%s:%s\n", u, cfg.Users[u])
	}
	pwFile := filepath.Join(dir, "passwd")
	writeFile(t, pwFile, users.String())
	if out, err := exec.Command(passwd, "-U", pwFile).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd -U %s: %v: %s", pwFile, err, out)
	}
	for _, u := range sortedKeys(cfg.ACL) {
		fmt.Fprintf(&acl, "user %s\n", u)
		for _, rule := range cfg.ACL[u] {
			fmt.Fprintf(&acl, "topic %s\n", rule)
		}
	}
	aclFile := filepath.Join(dir, "acl")
	writeFile(t, aclFile, acl.String())

	port := FreePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	writeFile(t, conf, strings.Join([]string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous false",
		"password_file " + pwFile,
		"acl_file " + aclFile,
		"persistence true",
		"persistence_location " + filepath.Join(dir, "data") + "/",
		// As root it would switch to the mosquitto user, which cannot
		// read the test's folder; as anyone else this is ignored.
		"user root",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"",
	}, "\n"))
	m := &Mosquitto{server: newServer(t, "mosquitto", []string{bin, "-c", conf}, port, dir), Dir: dir}
	m.Start()
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
