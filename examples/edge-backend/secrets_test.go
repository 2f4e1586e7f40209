package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWrongCredentialsNotPrinted: with passwords the broker and Redis
// refuse, the backend runs unhealthy and says why (the servers' refusals)
// without ever printing what it sent; its health answer holds no secret.
func TestWrongCredentialsNotPrinted(t *testing.T) {
	mosq, redis := stack(t)
	wrong := map[string]string{}
	for k, v := range creds {
		wrong[k] = v
	}
	wrong[fileRedisPassword] = "wrong-redis-pw-19c3"
	wrong[fileMQTTPassword] = "wrong-mqtt-pw-77ab"
	dir := writeSecrets(t, wrong)
	b := startBackend(t, "-mqtt", mosq.URL(), "-redis", redis.Addr(), "-secrets", dir)
	t.Cleanup(func() { t.Logf("backend log:\n%s", b.stderr) })
	waitFor(t, "both refusals in the log", 5*time.Second, func() bool {
		log := b.stderr.String()
		return strings.Contains(log, "WRONGPASS") && strings.Contains(log, "mqtt connect failed")
	})
	code, body := b.get(t, "/healthz", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"redis":"unreachable"`) || !strings.Contains(body, `"mqtt":"disconnected"`) {
		t.Errorf("/healthz: %d %s, want 503 with both down", code, body)
	}
	_, msgs := b.get(t, "/api/messages", wrong[fileAPIToken])
	b.stop()
	all := b.stderr.String() + body + msgs
	for name, v := range wrong {
		if strings.Contains(all, v) {
			t.Errorf("the secret %s is shown:\n%s", name, all)
		}
	}
}

// TestMissingSecret: each missing or empty secret file stops the backend
// at start with an error that names the file and shows no secret.
func TestMissingSecret(t *testing.T) {
	for _, name := range []string{fileRedisPassword, fileMQTTUser, fileMQTTPassword, fileAPIToken} {
		for _, how := range []string{"missing", "empty", "two lines"} {
			dir := writeSecrets(t, creds)
			p := filepath.Join(dir, name)
			switch how {
			case "missing":
				os.Remove(p)
			case "empty":
				os.WriteFile(p, nil, 0o600)
			case "two lines":
				os.WriteFile(p, []byte("a\nb\n"), 0o600)
			}
			var stderr bytes.Buffer
			err := run(context.Background(), []string{"-secrets", dir, "-listen", "127.0.0.1:0"}, &stderr, &stderr)
			if err == nil || !strings.Contains(err.Error(), "secret "+name) {
				t.Errorf("%s %s: %v, want an error naming it", name, how, err)
				continue
			}
			assertNoSecrets(t, name+" "+how, err.Error()+stderr.String())
		}
	}
}

// TestLooseSecretWarns: a secret file every user can read is used, with a
// warning that says how to fix it.
func TestLooseSecretWarns(t *testing.T) {
	dir := writeSecrets(t, creds)
	p := filepath.Join(dir, fileAPIToken)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, warnings, err := readSecrets(dir)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "chmod o-rwx") {
		t.Fatalf("readSecrets: %v %q, want one warning", err, warnings)
	}
}

// TestRedactor: a secret written through the log is replaced.
func TestRedactor(t *testing.T) {
	var out bytes.Buffer
	r, err := newRedactor(&out, "pw1", "tok2")
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("dial redis://u:pw1@h failed, token tok2\n"))
	if got := out.String(); got != "dial redis://u:[redacted]@h failed, token [redacted]\n" {
		t.Errorf("got %q", got)
	}
	if _, err := newRedactor(&out, ""); err == nil {
		t.Error("an empty secret was accepted")
	}
}
