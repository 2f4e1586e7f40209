package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// config is what the flags (or their environment variables) say.
type config struct {
	listen   string
	mqttURL  string
	clientID string
	topic    string
	redis    string
	key      string
	keep     int
	secrets  string // folder of the four secret files
	check    string
	version  string // EDGE_VERSION: shown by /healthz, so a release can be told apart
}

// The secret files, in the -secrets folder. Their contents are never
// defaults, never in the image and never printed.
const (
	fileRedisPassword = "redis-password"
	fileMQTTUser      = "mqtt-user"
	fileMQTTPassword  = "mqtt-password"
	fileAPIToken      = "api-token"
)

// secrets are the contents of the secret files.
type secrets struct {
	redisPassword, mqttUser, mqttPassword, apiToken string
}

// envOr returns the environment variable's value, or def when unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// parseFlags reads the flags; each has an EDGE_… variable as its default.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{version: envOr("EDGE_VERSION", "dev")}
	fs := flag.NewFlagSet("edge-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", envOr("EDGE_LISTEN", "127.0.0.1:8081"), "HTTP address (env EDGE_LISTEN); the proxy forwards /api here")
	fs.StringVar(&c.mqttURL, "mqtt", envOr("EDGE_MQTT", "tcp://127.0.0.1:1883"), "MQTT broker (env EDGE_MQTT)")
	fs.StringVar(&c.clientID, "client-id", envOr("EDGE_MQTT_CLIENT_ID", "edge-backend"), "MQTT client ID; the broker keeps this session's subscription and queued messages (env EDGE_MQTT_CLIENT_ID)")
	fs.StringVar(&c.topic, "topic", envOr("EDGE_TOPIC", "edge/#"), "MQTT topic filter to subscribe to, QoS 1 (env EDGE_TOPIC)")
	fs.StringVar(&c.redis, "redis", envOr("EDGE_REDIS", "127.0.0.1:6379"), "Redis host:port (env EDGE_REDIS)")
	fs.StringVar(&c.key, "key", envOr("EDGE_REDIS_KEY", "edge:messages"), "Redis list holding the messages (env EDGE_REDIS_KEY)")
	fs.IntVar(&c.keep, "keep", 1000, "number of newest messages kept in Redis")
	fs.StringVar(&c.secrets, "secrets", envOr("EDGE_SECRETS", "/data/secrets"),
		"folder of the secret files "+fileRedisPassword+", "+fileMQTTUser+", "+fileMQTTPassword+", "+fileAPIToken+" (env EDGE_SECRETS)")
	fs.StringVar(&c.check, "check", "", "health check: GET this URL, exit 0 on 200 (the container's HealthCmd)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	if c.keep < 1 {
		return c, fmt.Errorf("-keep %d: keep at least one message", c.keep)
	}
	return c, nil
}

// readSecrets reads the four secret files. A missing, empty or unreadable
// file is an error that names the file and what to do, never its content.
func readSecrets(dir string) (secrets, []string, error) {
	var s secrets
	var warnings []string
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{fileRedisPassword, &s.redisPassword},
		{fileMQTTUser, &s.mqttUser},
		{fileMQTTPassword, &s.mqttPassword},
		{fileAPIToken, &s.apiToken},
	} {
		p := filepath.Join(dir, f.name)
		b, err := os.ReadFile(p)
		if err != nil {
			return s, nil, fmt.Errorf("secret %s: %w (provisioning writes it; see docs/edge-stack.md)", f.name, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" || strings.ContainsAny(v, "\r\n") {
			return s, nil, fmt.Errorf("secret %s: %s must hold one non-empty line", f.name, p)
		}
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o007 != 0 {
			warnings = append(warnings, fmt.Sprintf("%s is readable by every user (mode %04o): chmod o-rwx it", p, st.Mode().Perm()))
		}
		*f.dst = v
	}
	return s, warnings, nil
}

// redactor writes to w with every secret replaced by "[redacted]": the
// last guard for logs and errors, whatever a library puts in a message.
// It is given the passwords and the token; the MQTT user name is not
// replaced (a common word would be), the backend just never prints it.
type redactor struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte
}

var errNoSecret = errors.New("empty secret")

func newRedactor(w io.Writer, values ...string) (*redactor, error) {
	r := &redactor{w: w}
	for _, v := range values {
		if v == "" {
			return nil, errNoSecret
		}
		r.secrets = append(r.secrets, []byte(v))
	}
	return r, nil
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := p
	for _, s := range r.secrets {
		out = bytes.ReplaceAll(out, s, []byte("[redacted]"))
	}
	if _, err := r.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// redact returns s with every secret replaced.
func (r *redactor) redact(s string) string {
	for _, v := range r.secrets {
		s = strings.ReplaceAll(s, string(v), "[redacted]")
	}
	return s
}
