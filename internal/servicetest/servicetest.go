// Package servicetest starts the real Mosquitto and Redis of Debian's
// packages (mosquitto, redis-server) on 127.0.0.1 for tests: each on a
// free port, with its configuration, credentials and data in the test's
// temporary folder, stopped when the test ends. A server can be stopped
// and started again on the same port and data, to test reconnects.
//
// Only tests import it. A missing program skips the test, or fails it
// where the real proofs are asked for (hosttool.Strict: make test and CI
// install both through scripts/deps.sh).
package servicetest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pibake/pibake/internal/hosttool"
)

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is one program of a Debian package run in the foreground, its
// output kept in a log file of the test's folder.
type server struct {
	t    testing.TB
	name string
	argv []string
	port int
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
	end chan struct{}
}

// Addr is the server's host:port.
func (s *server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port is the server's TCP port.
func (s *server) Port() int { return s.port }

// Start starts the server (again) and waits until it accepts connections.
func (s *server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatalf("%s: already running", s.name)
	}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatalf("%s: log file: %v", s.name, err)
	}
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.t.Fatalf("start %s: %v", s.name, err)
	}
	end := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(end) }()
	s.cmd, s.end = cmd, end
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-end:
			s.t.Fatalf("%s exited at start: %s", s.name, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: no connection on %s after 10 s: %v\n%s", s.name, s.Addr(), err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.end:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.end
	}
	s.cmd, s.end = nil, nil
}

// Log returns what the server printed so far.
func (s *server) Log() string {
	b, _ := os.ReadFile(s.log)
	return string(bytes.TrimSpace(b))
}

func newServer(t testing.TB, name string, argv []string, port int, dir string) *server {
	s := &server{t: t, name: name, argv: argv, port: port, log: filepath.Join(dir, name+".log")}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, s.Log())
		}
	})
	return s
}

// writeFile writes a configuration or secret file readable by its owner only.
func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// need returns the program's path, skipping or failing the test as
// hosttool.Need does when the package is not installed.
func need(t testing.TB, tool, pkg string) string {
	t.Helper()
	return hosttool.Need(t, tool, pkg)
}

func mkdir(t testing.TB, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	return dir
}
