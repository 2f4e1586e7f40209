package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/vm"
)

// repoServer serves an update repository on loopback and counts the bytes
// it sends.
type repoServer struct {
	addr string
	sent atomic.Int64
	srv  *http.Server
}

func serveRepo(t *testing.T, dir string) *repoServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs := &repoServer{addr: ln.Addr().String()}
	files := http.FileServer(http.Dir(dir))
	rs.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(countingWriter{w, &rs.sent}, r)
	})}
	go rs.srv.Serve(ln)
	t.Cleanup(func() { rs.srv.Close() })
	return rs
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// watch boots img and calls done for each console line until it returns
// true; then QEMU is stopped.
func watch(t *testing.T, img, name string, fwd map[string]string, timeout time.Duration, done func(line string, at time.Duration) bool) {
	t.Helper()
	logPath := filepath.Join(os.TempDir(), "pibake-e2e-"+name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	pr, pw := io.Pipe()
	start := time.Now()
	var wg sync.WaitGroup
	finished := false
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if !finished && done(sc.Text(), time.Since(start)) {
				finished = true
				cancel()
			}
		}
	}()
	_ = vm.Run(ctx, vm.Options{Image: img, Persist: true, Stdout: io.MultiWriter(logf, pw), GuestFwd: fwd})
	pw.Close()
	wg.Wait()
	if !finished {
		t.Fatalf("%s: gave up after %s (console in %s)", name, time.Since(start).Round(time.Second), logPath)
	}
	t.Logf("%s: console in %s", name, logPath)
}

// TestUpdate: a device running 1.0.0 pulls 2.0.0 from a repository served on
// the host's loopback (the guest reaches only that, via guestfwd), writes
// slot B, trial-boots it, passes its health checks and commits.
func TestUpdate(t *testing.T) {
	needE2E(t)
	keys := t.TempDir()
	if _, _, err := channel.GenerateKeyFiles(keys, "fleet", ""); err != nil {
		t.Fatal(err)
	}
	upd := "server: http://10.0.2.100:8080\nchannel: stable\nkeys: [keys/fleet.pub]\npoll: 1m\nhealth:\n  deadline: 3m\n  units: [demo-hello.service]\n"
	v1, err := buildVariant(t, variant{version: "1.0.0", overlay: "e2e-status", service: "e2e-status", updater: upd, keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := buildVariant(t, variant{version: "2.0.0", overlay: "e2e-status", service: "e2e-status", updater: upd, keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Dir(filepath.Dir(v1)))
	defer os.RemoveAll(filepath.Dir(filepath.Dir(v2)))
	key, err := channel.LoadPrivateKey(filepath.Join(keys, "fleet.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	pub, err := publish.Publish(context.Background(), publish.Options{Repo: repo, Channel: "stable", Build: filepath.Dir(v2), Key: key, Expires: 24 * time.Hour, Rollout: 1, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveRepo(t, repo)
	img := copyImage(t, v1, 0)

	var seenV1, seenDownload, seenTrial time.Duration
	watch(t, img, "update", map[string]string{"10.0.2.100:8080": srv.addr}, 25*time.Minute, func(line string, at time.Duration) bool {
		switch {
		case seenV1 == 0 && strings.Contains(line, "E2E-STATUS version=1.0.0 slot=a"):
			seenV1 = at
		case seenDownload == 0 && strings.Contains(line, "rebooting into the trial"):
			seenDownload = at
		case seenTrial == 0 && strings.Contains(line, "pibake: booting slot b"):
			seenTrial = at
		case strings.Contains(line, "E2E-STATUS version=2.0.0 slot=b") && strings.Contains(line, "slot b: demo 2.0.0"):
			t.Logf("1.0.0 up at %s; trial reboot at %s; slot b booting at %s; 2.0.0 committed at %s", seenV1.Round(time.Second), seenDownload.Round(time.Second), seenTrial.Round(time.Second), at.Round(time.Second))
			return true
		}
		return false
	})
	var artifacts int64
	for _, a := range pub.Document.Artifacts {
		artifacts += a.Size
	}
	t.Logf("bytes served to the device: %d (artifacts %d)", srv.sent.Load(), artifacts)
	if seenV1 == 0 || seenTrial == 0 {
		t.Errorf("missed a step: v1 up %v, trial boot %v", seenV1, seenTrial)
	}
}
