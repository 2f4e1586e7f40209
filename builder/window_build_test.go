package builder

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
)

// TestBuildWithWindow: the image's updater.yaml carries the window with
// its zone resolved into offsets, and the inhibit's bound, and the
// device's configuration loader accepts it.
func TestBuildWithWindow(t *testing.T) {
	need(t, "unsquashfs")
	fx := newFixture(t)
	repo := fx.repo(t)
	if _, _, err := channel.GenerateKeyFiles(filepath.Join(repo, "keys"), "fleet", ""); err != nil {
		t.Fatal(err)
	}
	def := filepath.Join(repo, "images", "small.yaml")
	b, _ := os.ReadFile(def)
	updater := "updater:\n  server: http://10.0.2.100:8080\n  keys: [keys/fleet.pub]\n" +
		"  window: {days: [sat, sun], from: \"22:00\", to: \"04:00\", timezone: America/New_York}\n  inhibit: {max_delay: 6h}\n"
	if err := os.WriteFile(def, []byte(strings.Replace(string(b), "environments:", updater+"environments:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Definition: def, Board: "qemu", OutDir: filepath.Join(t.TempDir(), "out"), CacheDir: fx.cache})
	if err != nil {
		t.Fatal(err)
	}
	data, err := exec.Command("unsquashfs", "-cat", extractRoot(t, res.Image), config.ImagePath).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"timezone: America/New_York", "changes:", "offset: -18000", "offset: -14400", "max_delay: 6h0m0s"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("updater.yaml lacks %q:\n%s", want, data)
		}
	}
	file := filepath.Join(t.TempDir(), "updater.yaml")
	os.WriteFile(file, data, 0o644)
	c, err := config.Load(file, filepath.Join(t.TempDir(), "none.yaml"))
	if err != nil || c.Window == nil || len(c.Window.Changes) < 70 || c.Inhibit.Max().Hours() != 6 {
		t.Fatalf("the device reads %+v, %v", c.Window, err)
	}
	// The agent's version, as the manifest records it, for its reports.
	if c.Agent == "" || c.Agent != res.Manifest.Agent.Version {
		t.Errorf("updater.yaml names agent %q, the manifest %q", c.Agent, res.Manifest.Agent.Version)
	}
}
