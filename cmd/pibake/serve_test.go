package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/updater/channel"
)

func TestServe(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, channel.ChannelsDir), 0o755)
	os.WriteFile(filepath.Join(dir, channel.DocumentPath("stable")), []byte(`{"serial":1}`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", dir}, pw, io.Discard) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	base := strings.TrimSuffix(line[strings.Index(line, "http://"):strings.Index(line, " (")], "/")
	resp, err := http.Get(base + "/channels/stable.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"serial":1}` {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}
	// Nothing outside the folder, nothing half-written.
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o644)
	os.Symlink(outside, filepath.Join(dir, channel.DocumentPath("link")))
	os.Symlink("/etc", filepath.Join(dir, "etc"))
	os.WriteFile(filepath.Join(dir, channel.ChannelsDir, ".upload-123"), []byte("half"), 0o644)
	os.WriteFile(filepath.Join(dir, channel.ChannelsDir, "stable.json.new"), []byte("half"), 0o644)
	for _, p := range []string{"/channels/link.json", "/etc/hostname", "/channels/.upload-123", "/channels/stable.json.new", "/../../etc/hostname"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Errorf("GET %s: served %q", p, body)
		}
	}
	resp, err = http.Post(base+"/channels/stable.json", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

func TestKeygenAndPublishUsage(t *testing.T) {
	dir := t.TempDir()
	out, _, err := runCmd("keygen", "--out", dir, "--name", "fleet")
	if err != nil || !strings.Contains(out, "fleet.key") {
		t.Fatalf("keygen: %v %q", err, out)
	}
	if _, _, err := runCmd("keygen", "--out", dir, "--name", "fleet"); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Errorf("second keygen: %v", err)
	}
	if _, _, err := runCmd("publish", dir); err == nil || exitCode(err) != 2 {
		t.Errorf("publish without flags: %v", err)
	}
	_, _, err = runCmd("publish", "--repo", filepath.Join(dir, "repo"), "--channel", "stable", "--key", filepath.Join(dir, "fleet.key"), dir)
	if err == nil || !strings.Contains(err.Error(), "not a build output folder") {
		t.Errorf("publish of a non-build: %v", err)
	}
}
