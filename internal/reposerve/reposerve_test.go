package reposerve

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/updater/channel"
)

// serveRepo starts New on a folder with the limits l.
func serveRepo(t *testing.T, dir string, l Limits) string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(root.FS(), nil, l)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); root.Close() })
	return ln.Addr().String()
}

// TestServeNoListings: a folder is not a file of the repository; its
// listing would show every blob and channel name.
func TestServeNoListings(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, channel.BlobsDir), 0o755)
	os.MkdirAll(filepath.Join(dir, channel.ChannelsDir), 0o755)
	os.WriteFile(filepath.Join(dir, channel.DocumentPath("secret-beta")), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hi"), 0o644)
	addr := serveRepo(t, dir, DefaultLimits)
	for _, p := range []string{"/", "/channels/", "/channels", "/blobs/sha256/", "/blobs", "/index.html"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "secret-beta") {
			t.Errorf("GET %s: %d %q, want 404", p, resp.StatusCode, body)
		}
	}
	resp, err := http.Get("http://" + addr + "/" + channel.DocumentPath("secret-beta"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a file: %d", resp.StatusCode)
	}
}

// rawGet sends a GET on a new connection; rcvbuf, if not 0, is its
// receive buffer's size.
func rawGet(t *testing.T, addr, path string, rcvbuf int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServeTimeouts: a kept-alive connection left idle, and a client that
// stops reading a response, are cut off; a slow client that keeps
// reading is not, however long its download takes.
func TestServeTimeouts(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, channel.BlobsDir), 0o755)
	big := bytes.Repeat([]byte("0123456789abcdef"), 32<<20/16)
	os.MkdirAll(filepath.Join(dir, channel.ChannelsDir), 0o755)
	os.WriteFile(filepath.Join(dir, channel.BlobPath("big")), big, 0o644)
	os.WriteFile(filepath.Join(dir, channel.DocumentPath("stable")), []byte(`{"serial":1}`), 0o644)
	// The stall limit leaves a loaded machine (make test runs QEMU beside
	// this) 1.6 s of scheduling slack over the slow client's pauses.
	l := Limits{Header: time.Second, Idle: 300 * time.Millisecond, Stall: 2 * time.Second}
	addr := serveRepo(t, dir, l)

	// Idle after one request.
	c := rawGet(t, addr, "/"+channel.DocumentPath("stable"), 0)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF || time.Since(start) > 3*time.Second {
		t.Errorf("an idle kept-alive connection: %v after %s, want closed by the server", err, time.Since(start))
	}

	// A client that stops reading: the server gives up on it.
	c = rawGet(t, addr, "/"+channel.BlobPath("big"), 64<<10)
	time.Sleep(2*l.Stall + time.Second)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err != nil || n >= int64(len(big)) {
		t.Errorf("a stalled client: read %d bytes (%v), want the connection closed before the whole %d", n, err, len(big))
	}

	// A slow client that keeps reading gets all of it, though it takes
	// many times the stall limit.
	small := big[:8<<20]
	os.WriteFile(filepath.Join(dir, channel.BlobPath("small")), small, 0o644)
	c = rawGet(t, addr, "/"+channel.BlobPath("small"), 256<<10)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	br = bufio.NewReaderSize(c, 64<<10)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	var got int64
	for {
		k, err := io.CopyN(io.Discard, resp.Body, 512<<10)
		got += k
		if err != nil {
			break
		}
		time.Sleep(400 * time.Millisecond)
	}
	if got != int64(len(small)) || time.Since(start) < 2*l.Stall {
		t.Errorf("a slow client got %d of %d bytes in %s", got, len(small), time.Since(start))
	}
}
