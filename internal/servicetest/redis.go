package servicetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Redis is a running redis-server.
type Redis struct {
	*server
	// Dir holds redis.conf and the append-only file (data/), which a
	// restart keeps.
	Dir      string
	password string
}

// StartRedis starts Debian's redis-server on a free port of 127.0.0.1
// with requirepass (the password is in its configuration file, not on
// its command line) and the append-only file on, and stops it when the
// test ends.
func StartRedis(t testing.TB, password string) *Redis {
	t.Helper()
	bin := need(t, "redis-server", "redis-server")
	if password == "" || strings.ContainsAny(password, "\"\n\\ ") {
		t.Fatalf("redis: give a password without quotes, spaces, backslashes or newlines")
	}
	dir := mkdir(t, filepath.Join(t.TempDir(), "redis"))
	data := mkdir(t, filepath.Join(dir, "data"))
	port := FreePort(t)
	conf := filepath.Join(dir, "redis.conf")
	writeFile(t, conf, strings.Join([]string{
		"bind 127.0.0.1",
		fmt.Sprintf("port %d", port),
		"protected-mode yes",
		"requirepass " + password,
		"dir " + data,
		`save ""`,
		"appendonly yes",
		"daemonize no",
		"loglevel warning",
		"logfile \"\"",
		"",
	}, "\n"))
	r := &Redis{server: newServer(t, "redis-server", []string{bin, conf}, port, dir), Dir: dir, password: password}
	r.Start()
	return r
}

// CLI runs redis-cli against the server (password through REDISCLI_AUTH,
// not its command line) and returns its output: an oracle for what a
// program under test stored.
func (r *Redis) CLI(args ...string) string {
	r.t.Helper()
	bin := need(r.t, "redis-cli", "redis-tools")
	cmd := exec.Command(bin, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(r.port), "--no-auth-warning"}, args...)...)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+r.password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
