package channel

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// mixed is a release of two boards: each has its own boot and root.
func mixed() *Document {
	d := doc(4)
	d.Boards = []string{"pi3", "pi4"}
	d.Artifacts = nil
	for i, b := range d.Boards {
		for j, n := range []string{"boot", "root"} {
			sum := strings.Repeat(string("0123"[2*i+j]), 64)
			d.Artifacts = append(d.Artifacts, Artifact{Name: n, Path: BlobPath(sum), Size: 100, SHA256: sum, PartitionSize: 4096, Board: b})
		}
	}
	return d
}

func TestArtifactsFor(t *testing.T) {
	d := mixed()
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"pi3", "pi4"} {
		arts := d.ArtifactsFor(b)
		if len(arts) != 2 || arts[0].Board != b || arts[1].Board != b {
			t.Errorf("%s: %+v", b, arts)
		}
	}
	if arts := doc(1).ArtifactsFor("pi4"); len(arts) != 1 {
		t.Errorf("untagged artifacts are for every board: %+v", arts)
	}
	if b, _ := json.Marshal(doc(1)); strings.Contains(string(b), `"board"`) {
		t.Errorf("a one-board document names the artifacts' board: %s", b)
	}
}

func TestValidateBoards(t *testing.T) {
	for name, change := range map[string]func(d *Document){
		"a board not in boards": func(d *Document) { d.Artifacts[0].Board = "pi5" },
		"some untagged":         func(d *Document) { d.Artifacts[0].Board = "" },
		"a board without any":   func(d *Document) { d.Boards = append(d.Boards, "qemu") },
		"repeated in a board":   func(d *Document) { d.Artifacts[1].Name = "boot" },
	} {
		d := mixed()
		change(d)
		if err := d.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
