package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
)

// TestMixedBoards: one release carries a Pi 3 and a Pi 4 build; each
// device writes its own board's artifacts.
func TestMixedBoards(t *testing.T) {
	r := newRepo(t)
	r.serial++
	d := &channel.Document{Format: channel.Format, Channel: "stable", Image: "demo", Version: "2.0", Serial: r.serial,
		Expires: now.Add(time.Hour), Boards: []string{"pi3", "pi4"}, Rollout: 1}
	for _, board := range d.Boards {
		for _, n := range []string{"boot", "root"} {
			data := content(n, "2.0 for "+board)
			sum := sha256.Sum256(data)
			h := hex.EncodeToString(sum[:])
			os.MkdirAll(filepath.Join(r.dir, channel.BlobsDir), 0o755)
			os.WriteFile(filepath.Join(r.dir, channel.BlobPath(h)), data, 0o644)
			d.Artifacts = append(d.Artifacts, channel.Artifact{Name: n, Path: channel.BlobPath(h), Size: int64(len(data)), SHA256: h, PartitionSize: partSize, Board: board})
		}
	}
	r.sign(t, d, "stable")
	for _, board := range []string{"pi3", "pi4"} {
		dev := newDevice()
		dev.agent(r, dev.boot.PowerOn()).AfterBoot(ctx)
		a := dev.agent(r, bootchain.A)
		a.Board = board
		if err := a.Update(ctx); err != nil {
			t.Fatalf("%s: %v", board, err)
		}
		if !dev.holds(bootchain.B, "2.0 for "+board) {
			t.Errorf("the %s device did not write its board's artifacts", board)
		}
	}
	other := newDevice()
	a := other.agent(r, bootchain.A)
	a.Board = "qemu"
	if err := a.Update(ctx); err == nil {
		t.Error("a qemu device took a release of pi3 and pi4")
	}
}
