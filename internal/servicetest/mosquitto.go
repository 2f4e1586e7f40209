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
	// Patterns are rules for every user, each "read TOPIC", "write TOPIC"
	// or "readwrite TOPIC" where %u stands for the user name and %c for
	// the client id (mosquitto.conf(5), acl_file's pattern lines).
	Patterns []string
	// TLS makes the listener a TLS one, with a certificate for 127.0.0.1
	// and localhost signed by a CA made for the test (Mosquitto.CAFile).
	TLS bool
}

// Mosquitto is a running broker.
type Mosquitto struct {
	*server
	// Dir holds mosquitto.conf, the password file, the ACL and the
	// persistence folder (data/), which a restart keeps.
	Dir string
	// CAFile is the PEM certificate of the CA that signed the TLS
	// listener's certificate ("" without TLS).
	CAFile string
}

// URL is the broker's address for MQTT clients: tcp://127.0.0.1:PORT, or
// ssl://127.0.0.1:PORT with TLS.
func (m *Mosquitto) URL() string {
	if m.CAFile != "" {
		return "ssl://" + m.Addr()
	}
	return "tcp://" + m.Addr()
}

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
	for _, rule := range cfg.Patterns {
		fmt.Fprintf(&acl, "pattern %s\n", rule)
	}
	aclFile := filepath.Join(dir, "acl")
	writeFile(t, aclFile, acl.String())

	port := FreePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	var tlsLines []string
	caFile := ""
	if cfg.TLS {
		var cert, key string
		caFile, cert, key = makeTLS(t, dir)
		tlsLines = []string{"cafile " + caFile, "certfile " + cert, "keyfile " + key, "tls_version tlsv1.2"}
	}
	lines := append([]string{fmt.Sprintf("listener %d 127.0.0.1", port)}, tlsLines...)
	lines = append(lines,
		"allow_anonymous false",
		"password_file "+pwFile,
		"acl_file "+aclFile,
		"persistence true",
		"persistence_location "+filepath.Join(dir, "data")+"/",
		// As root it would switch to the mosquitto user, which cannot
		// read the test's folder; as anyone else this is ignored.
		"user root",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"")
	writeFile(t, conf, strings.Join(lines, "\n"))
	m := &Mosquitto{server: newServer(t, "mosquitto", []string{bin, "-c", conf}, port, dir), Dir: dir, CAFile: caFile}
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
