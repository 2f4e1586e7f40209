package fleet

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/internal/servicetest"
	"github.com/pibake/pibake/publish"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/report"
)

// signChannel writes a signed release of demo 2.0 into repo as channel
// stable, in three waves from now.
func signChannel(t *testing.T, repo string, key minisign.PrivateKey, now time.Time) {
	t.Helper()
	sum := strings.Repeat("ab", 32)
	d := &channel.Document{Format: channel.Format, Channel: "stable", Image: "demo", Version: "2.0", Serial: 7,
		Expires: now.Add(720 * time.Hour).Truncate(time.Second), Boards: []string{"pi4"}, Rollout: 0.1,
		Waves: []channel.Wave{{Fraction: 0.1, From: now.Truncate(time.Second)}, {Fraction: 0.5, From: now.Add(24 * time.Hour).Truncate(time.Second)},
			{Fraction: 1, From: now.Add(72 * time.Hour).Truncate(time.Second)}},
		Artifacts: []channel.Artifact{{Name: "root", Path: channel.BlobPath(sum), Size: 100, SHA256: sum, PartitionSize: 4096}}}
	doc, sig, err := channel.Sign(d, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(repo, filepath.FromSlash(channel.DocumentPath("stable")))
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(channel.SignaturePath(path), sig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatchHalts: devices report through a real Mosquitto as the agent
// does (each as its own user, on its own topic); rollout watch counts
// the attempts at the channel's release, halts it when 3 of 7 finished
// attempts failed, says which devices and checks, and leaves a re-signed
// channel document the agent's verification accepts, halted.
func TestWatchHalts(t *testing.T) {
	pub, key, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	now := time.Now()
	signChannel(t, repo, key, now)

	devices := []struct {
		name, version, result, check, reason string
		serial                               uint64
	}{
		{"box-1", "2.0", report.ResultCommitted, "", "", 7},
		{"box-2", "2.0", report.ResultCommitted, "", "", 7},
		{"box-3", "2.0", report.ResultCommitted, "", "", 7},
		{"box-4", "2.0", report.ResultCommitted, "", "", 7},
		{"box-5", "2.0", report.ResultInProgress, "", "", 7},
		{"box-6", "1.9", report.ResultRolledBack, "health", "old release", 5}, // another release: not counted
		{"box-7", "2.0", report.ResultRolledBack, "health", "hello.service inactive", 7},
		{"box-8", "2.0", report.ResultFailed, "download", "digest mismatch", 7},
		{"box-9", "2.0", report.ResultRolledBack, "boot", "trial boot did not come up", 7},
	}
	users := map[string]string{"ops": "po", "box-x": "px"}
	acl := map[string][]string{"ops": {"read pibake/devices/#"}, "box-x": {"write pibake/devices/box-x/#"}}
	for _, d := range devices {
		users[d.name] = "p-" + d.name
		acl[d.name] = []string{"write pibake/devices/" + d.name + "/#"}
	}
	m := servicetest.StartMosquitto(t, servicetest.MosquittoConfig{Users: users, ACL: acl})
	sendAs := func(user, topic string, payload []byte) {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(user).SetUsername(user).SetPassword(users[user]))
		if err := waitToken(c.Connect(), "connect as "+user); err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(100)
		if err := waitToken(c.Publish(topic, 1, true, payload), "publish as "+user); err != nil {
			t.Fatal(err)
		}
	}

	out := &servicetest.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o := publish.RolloutOptions{Repo: repo, Channel: "stable", Key: key, Now: now}
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, WatchOptions{
			Broker: Broker{URL: m.URL(), Username: "ops", Password: "po"}, Channel: "stable",
			Brake:   Brake{MaxFailureRate: 0.4, MinAttempts: 7},
			Current: func() (*channel.Document, error) { return publish.Current(repo, "stable", []minisign.PublicKey{pub}) },
			Halt: func() (*channel.Document, error) {
				d, _, err := publish.Halt(o)
				return d, err
			},
			Once: true, Out: out,
		})
	}()
	sendAs("box-x", report.StateTopic("pibake", "box-x"), []byte("not json"))
	for _, d := range devices {
		s := report.State{Format: report.Format, Device: d.name, Channel: "stable", Board: "pi4", Image: "demo", Version: "1.9",
			Last: &report.Attempt{Image: "demo", Version: d.version, Serial: d.serial, Result: d.result, Check: d.check, Reason: d.reason}}
		b, _ := json.Marshal(s)
		sendAs(d.name, report.StateTopic("pibake", d.name), b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("the watch did not halt the release:\n%s", out)
	}
	text := out.String()
	t.Logf("rollout watch said:\n%s", text)
	for _, want := range []string{
		"ignored a report from box-x",
		"halted demo 2.0 on channel stable at serial 8: 3 of 7 attempts failed (42.9%)",
		"box-7 (rolled-back, health: hello.service inactive)", "box-8 (failed, download: digest mismatch)", "box-9 (rolled-back, boot:",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the watch did not say %q", want)
		}
	}
	if strings.Contains(text, "box-6") {
		t.Error("the watch counted box-6's attempt at another release")
	}
	path := filepath.Join(repo, filepath.FromSlash(channel.DocumentPath("stable")))
	doc, _ := os.ReadFile(path)
	sig, _ := os.ReadFile(channel.SignaturePath(path))
	d, err := channel.Verify(doc, sig, channel.Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Image: "demo", Now: now, LastSerial: 7})
	if err != nil || !d.Halted || d.Serial != 8 || len(d.Waves) != 3 {
		t.Fatalf("the channel after the watch, as a device verifies it: %+v %v", d, err)
	}
}
