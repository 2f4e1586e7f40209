package publish

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
)

func TestParseWaves(t *testing.T) {
	got, err := ParseWaves("10%@0h, 50%@24h,100%@72h")
	want := []WaveSpec{{0.1, 0}, {0.5, 24 * time.Hour}, {1, 72 * time.Hour}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("%+v %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("wave %d: %+v, want %+v", i+1, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "10", "10@0h", "10%", "0%@0h", "101%@0h", "10%@1h", "10%@0h,5%@1h",
		"10%@0h,50%@0h", "10%@0h,50%@-1h", "x%@0h", "10%@soon", "10%@0h,," + strings.Repeat(",", 20)} {
		if _, err := ParseWaves(bad); err == nil || !strings.Contains(err.Error(), "--waves") {
			t.Errorf("%q: %v, want an error naming --waves", bad, err)
		}
	}
}

// verifyAt reads the channel's document as a device would.
func verifyAt(t *testing.T, repo string, pub minisign.PublicKey, last uint64) (*channel.Document, error) {
	t.Helper()
	doc, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable")))
	sig, _ := os.ReadFile(filepath.Join(repo, channel.SignaturePath(channel.DocumentPath("stable"))))
	return channel.Verify(doc, sig, channel.Check{Trusted: []minisign.PublicKey{pub}, Board: "qemu", Channel: "stable", Image: "demo", Now: now, LastSerial: last})
}

func TestPublishWavesHaltResume(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	o := RolloutOptions{Repo: repo, Channel: "stable", Key: priv, Now: now}
	if _, _, err := Halt(o); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("halt of an empty channel: %v", err)
	}
	waves, _ := ParseWaves("10%@0h,50%@24h,100%@72h")
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 720 * time.Hour, Rollout: 1, Waves: waves, Now: now}); err != nil {
		t.Fatal(err)
	}
	d, err := verifyAt(t, repo, pub, 0)
	if err != nil || d.Rollout != 0.1 || len(d.Waves) != 3 || !d.Waves[1].From.Equal(now.Add(24*time.Hour)) || d.Halted {
		t.Fatalf("published with waves: %+v %v", d, err)
	}
	cost0, _ := os.ReadFile(filepath.Join(repo, channel.CostPath("stable")))

	h, changed, err := Halt(o)
	if err != nil || !changed || !h.Halted || h.Serial != 2 {
		t.Fatalf("halt: %+v %v %v", h, changed, err)
	}
	d, err = verifyAt(t, repo, pub, 1)
	if err != nil || !d.Halted || d.Serial != 2 || len(d.Waves) != 3 || !d.Expires.Equal(h.Expires) {
		t.Fatalf("halted document as a device reads it: %+v %v", d, err)
	}
	// The chunk document follows the serial; the cost report moved with it.
	cdoc, _ := os.ReadFile(filepath.Join(repo, channel.ChunksPath("stable")))
	csig, _ := os.ReadFile(filepath.Join(repo, channel.SignaturePath(channel.ChunksPath("stable"))))
	if cs, err := channel.VerifyChunks(cdoc, csig, d, []minisign.PublicKey{pub}, nil); err != nil || len(cs.Indexes) != 2 {
		t.Fatalf("chunk document after the halt: %v", err)
	}
	cost1, _ := os.ReadFile(filepath.Join(repo, channel.CostPath("stable")))
	if !strings.Contains(string(cost1), `"serial": 2`) || len(cost1) != len(cost0) {
		t.Errorf("cost report after the halt:\n%s\nbefore:\n%s", cost1, cost0)
	}
	if _, changed, err := Halt(o); err != nil || changed {
		t.Fatalf("second halt: changed %v %v, want nothing", changed, err)
	}
	r, changed, err := Resume(o)
	if err != nil || !changed || r.Halted || r.Serial != 3 {
		t.Fatalf("resume: %+v %v", r, err)
	}
	if d, err := verifyAt(t, repo, pub, 2); err != nil || d.Halted {
		t.Fatalf("resumed document: %+v %v", d, err)
	}
	// Publish goes on from the serials halt and resume signed.
	res, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.1"), Key: priv, Expires: 720 * time.Hour, Rollout: 1, Now: now})
	if err != nil || res.Document.Serial != 4 || len(res.Document.Waves) != 0 {
		t.Fatalf("publish after a resume: %+v %v", res, err)
	}
	// A key that did not sign the channel cannot halt it.
	_, other, _ := minisign.GenerateKey(rand.Reader)
	if _, _, err := Halt(RolloutOptions{Repo: repo, Channel: "stable", Key: other, Now: now}); err == nil {
		t.Fatal("another key halted the channel")
	}
	// An expired document is not re-signed.
	if _, _, err := Halt(RolloutOptions{Repo: repo, Channel: "stable", Key: priv, Now: now.Add(1000 * time.Hour)}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("halt of an expired document: %v", err)
	}
}

// TestBundleWaves: a bundle given a document of its own shorter than the
// waves leaves out the waves that begin after its expiry (they would
// never apply) instead of failing to sign.
func TestBundleWaves(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	waves, _ := ParseWaves("10%@0h,50%@24h,100%@600h")
	if _, err := Publish(context.Background(), Options{Repo: repo, Channel: "stable", Build: fakeBuild(t, "1.0.0"), Key: priv, Expires: 720 * time.Hour, Rollout: 1, Waves: waves, Now: now}); err != nil {
		t.Fatal(err)
	}
	res, err := Bundle(context.Background(), BundleOptions{Repo: repo, Channel: "stable", Out: filepath.Join(t.TempDir(), "b.tar"), Now: now, Expires: 48 * time.Hour, Key: priv})
	if err != nil || len(res.Document.Waves) != 2 || res.Document.Rollout != 0.1 {
		t.Fatalf("bundle --expires 48h of a release in waves: %v %+v", err, res)
	}
}
