package reposerve

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
)

// countingConn counts the bytes a connection carries both ways.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// signedRepo is a repository folder with a signed channel document of
// two artifacts, as publish writes it.
func signedRepo(t *testing.T, serial uint64) string {
	t.Helper()
	dir := t.TempDir()
	writeSigned(t, dir, serial)
	return dir
}

func writeSigned(t *testing.T, dir string, serial uint64) {
	t.Helper()
	_, key, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := &channel.Document{Format: channel.Format, Channel: "stable", Image: "demo", Version: "2.0", Serial: serial,
		Expires: time.Now().Add(30 * 24 * time.Hour), Boards: []string{"pi4"}, Rollout: 1}
	for _, n := range []string{"boot", "root"} {
		sum := strings.Repeat("ab", 32)
		d.Artifacts = append(d.Artifacts, channel.Artifact{Name: n, Path: channel.BlobPath(sum), Size: 300 << 20, SHA256: sum, PartitionSize: 400 << 20})
	}
	doc, sig, err := channel.Sign(d, key)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, channel.ChannelsDir), 0o755)
	os.WriteFile(filepath.Join(dir, channel.DocumentPath("stable")), doc, 0o644)
	os.WriteFile(filepath.Join(dir, channel.SignaturePath(channel.DocumentPath("stable"))), sig, 0o644)
}

// TestServeConditional: the server answers a document asked for with
// the ETag it gave (If-None-Match) with 304, and a changed document with
// 200, even within the same second (Last-Modified alone cannot tell).
func TestServeConditional(t *testing.T) {
	dir := signedRepo(t, 1)
	addr := serveRepo(t, dir, DefaultLimits)
	url := "http://" + addr + "/" + channel.DocumentPath("stable")
	get := func(etag string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	first := get("")
	etag := first.Header.Get("ETag")
	if first.StatusCode != 200 || etag == "" {
		t.Fatalf("first GET: %d, ETag %q", first.StatusCode, etag)
	}
	if resp := get(etag); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("GET with If-None-Match %s: %d, want 304", etag, resp.StatusCode)
	}
	writeSigned(t, dir, 2)
	if resp := get(etag); resp.StatusCode != 200 || resp.Header.Get("ETag") == etag {
		t.Fatalf("GET of a changed document with the old ETag: %d, ETag %q", resp.StatusCode, resp.Header.Get("ETag"))
	}
	blob := "http://" + addr + "/" + channel.BlobPath(strings.Repeat("cd", 32))
	os.MkdirAll(filepath.Join(dir, channel.BlobsDir), 0o755)
	os.WriteFile(filepath.Join(dir, channel.BlobPath(strings.Repeat("cd", 32))), []byte("blob"), 0o644)
	resp, err := http.Get(blob)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("ETag") != `"sha256-`+strings.Repeat("cd", 32)+`"` {
		t.Errorf("blob ETag %q", resp.Header.Get("ETag"))
	}
}

// TestIdlePollBytes measures what an idle poll (the channel's document
// and its signature, unchanged) costs on the wire against the server,
// without and with conditional requests.
func TestIdlePollBytes(t *testing.T) {
	dir := signedRepo(t, 1)
	addr := serveRepo(t, dir, DefaultLimits)
	poll := func(cache *install.Cache) int64 {
		var n atomic.Int64
		tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &n}, nil
		}}
		defer tr.CloseIdleConnections()
		src := install.HTTP{Base: "http://" + addr, Client: &http.Client{Transport: tr}, Cache: cache}
		read := func() {
			for _, p := range []string{channel.DocumentPath("stable"), channel.SignaturePath(channel.DocumentPath("stable"))} {
				if _, err := install.ReadFile(context.Background(), src, p, channel.MaxSize, install.Options{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		read() // the first poll fetches the documents whole
		n.Store(0)
		read()
		return n.Load()
	}
	before, after := poll(nil), poll(&install.Cache{})
	t.Logf("bytes on the wire for an idle poll (document and signature, both ways): %d without conditional requests, %d with", before, after)
	if after*2 > before {
		t.Errorf("an idle poll costs %d bytes with conditional requests, %d without", after, before)
	}
}
