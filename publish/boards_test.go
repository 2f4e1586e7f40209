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

// boardBuild is fakeBuild of version for board.
func boardBuild(t *testing.T, version, board string) string {
	t.Helper()
	return withBoard(t, fakeBuild(t, version), board)
}

// TestPublishBoards: the Pi 3 and Pi 4 builds of one version make one
// release; a device of each board verifies it and finds its artifacts,
// the chunk document lists each artifact's index once, each board's
// update is priced from its own earlier release, and dropping a board
// needs --force.
func TestPublishBoards(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	repo := t.TempDir()
	o := Options{Repo: repo, Channel: "stable", Key: priv, Expires: 720 * time.Hour, Rollout: 1, Now: now}
	o.Builds = []string{boardBuild(t, "1.0.0", "pi3"), boardBuild(t, "1.0.0", "pi4")}
	res, err := Publish(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	d := res.Document
	if len(d.Boards) != 2 || len(d.Artifacts) != 4 || d.Artifacts[0].Board != "pi3" || d.Artifacts[3].Board != "pi4" {
		t.Fatalf("document %+v", d)
	}
	doc, _ := os.ReadFile(filepath.Join(repo, channel.DocumentPath("stable")))
	sig, _ := os.ReadFile(filepath.Join(repo, channel.SignaturePath(channel.DocumentPath("stable"))))
	cdoc, _ := os.ReadFile(filepath.Join(repo, channel.ChunksPath("stable")))
	csig, _ := os.ReadFile(filepath.Join(repo, channel.SignaturePath(channel.ChunksPath("stable"))))
	for _, board := range []string{"pi3", "pi4"} {
		got, err := channel.Verify(doc, sig, channel.Check{Trusted: []minisign.PublicKey{pub}, Board: board, Channel: "stable", Image: "demo", Now: now})
		if err != nil || len(got.ArtifactsFor(board)) != 2 {
			t.Fatalf("%s: %v", board, err)
		}
		cs, err := channel.VerifyChunks(cdoc, csig, got, []minisign.PublicKey{pub}, nil)
		if err != nil {
			t.Fatalf("%s: chunk document: %v", board, err)
		}
		for _, a := range got.ArtifactsFor(board) {
			if _, ok := cs.For(a.SHA256); !ok {
				t.Errorf("%s: no chunk index for %s", board, a.Name)
			}
		}
	}

	o.Builds = []string{boardBuild(t, "1.1.0", "pi3"), boardBuild(t, "1.1.0", "pi4")}
	res, err = Publish(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Delta) != 2 || res.Delta[0].Board != "pi3" || res.Delta[1].Board != "pi4" || res.Delta[0].From != "1.0.0" || res.Delta[0].Full == 0 {
		t.Fatalf("costs %+v: want one per board, from 1.0.0", res.Delta)
	}
	cost, _ := os.ReadFile(filepath.Join(repo, channel.CostPath("stable")))
	if !strings.Contains(string(cost), `"board": "pi3"`) {
		t.Errorf("cost report names no board:\n%s", cost)
	}

	o.Builds = []string{boardBuild(t, "1.2.0", "pi4")}
	if _, err := Publish(context.Background(), o); !errors.Is(err, ErrOtherBoard) {
		t.Fatalf("dropping pi3: %v, want ErrOtherBoard", err)
	}
	for name, dirs := range map[string][]string{
		"two versions":    {boardBuild(t, "1.2.0", "pi3"), boardBuild(t, "1.3.0", "pi4")},
		"the board twice": {boardBuild(t, "1.2.0", "pi4"), boardBuild(t, "1.2.0", "pi4")},
	} {
		o.Builds = dirs
		if _, err := Publish(context.Background(), o); err == nil {
			t.Errorf("%s: published", name)
		}
	}
	o.Builds, o.Force = []string{boardBuild(t, "1.2.0", "pi4")}, true
	if res, err := Publish(context.Background(), o); err != nil || res.Document.Artifacts[0].Board != "" {
		t.Fatalf("--force to pi4 only: %v", err)
	}
}
