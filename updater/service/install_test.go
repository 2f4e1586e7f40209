package service

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/state"
	"github.com/pibake/pibake/updater/state/statetest"
)

// signedBundle writes a bundle (a tar, as pibake bundle makes) holding
// one channel's document, serial 1, signed with a new key it returns.
func signedBundle(t *testing.T, ch string) (string, minisign.PublicKey) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	doc, sig, err := channel.Sign(&channel.Document{Format: channel.Format, Channel: ch, Image: "demo", Version: "2", Serial: 1,
		Expires: time.Now().Add(time.Hour), Boards: []string{"pi4"}, Rollout: 1,
		Artifacts: []channel.Artifact{{Name: "root", SHA256: sum, Size: 1, PartitionSize: 1, Path: channel.BlobPath(sum)}}}, priv)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "update.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	name := channel.DocumentPath(ch)
	for n, data := range map[string][]byte{name: doc, channel.SignaturePath(name): sig} {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, pub
}

// TestInstallFromKeepsTheAgent: a bundle of another channel is installed
// from that channel (its document verifies for it: serial 1 was seen, so
// nothing is new), and the agent given, the service's, keeps its own
// channel and source.
func TestInstallFromKeepsTheAgent(t *testing.T) {
	bundle, pub := signedBundle(t, "beta")
	server := install.HTTP{Base: "https://updates.example"}
	a := agent.New(agent.Config{Channel: "stable", Image: "demo", Board: "pi4", Trusted: []minisign.PublicKey{pub}},
		agent.Ports{Source: server, Booted: bootchain.A, Store: &statetest.Memory{St: state.State{Serials: map[string]uint64{"beta": 1}}}})
	err := InstallFrom(context.Background(), a, bundle, slog.New(slog.DiscardHandler))
	if !errors.Is(err, agent.ErrNothingNew) {
		t.Fatalf("install from a beta bundle: %v, want %v (its document verified for channel beta)", err, agent.ErrNothingNew)
	}
	if a.Channel != "stable" || a.Source != server {
		t.Errorf("after a one-off install the agent follows channel %q from %v, want stable from %v", a.Channel, a.Source, server)
	}
}
