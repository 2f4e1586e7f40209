package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReportBlock: the image's report block loads and marshals back; a
// bad one is refused by Load with the field named; the override cannot
// set it.
func TestReportBlock(t *testing.T) {
	dir := t.TempDir()
	img, ovr := filepath.Join(dir, "updater.yaml"), filepath.Join(dir, "override.yaml")
	base := "server: http://x\nchannel: s\nboard: qemu\nkeys: [RWSkey]\nimage: demo\nbuilt: 1796083200\n"
	os.WriteFile(img, []byte(base+"report:\n  broker: ssl://mqtt.example.com:8883\n  prefix: site/lyon\n  heartbeat: 5m\n"), 0o644)
	c, err := Load(img, ovr)
	if err != nil || c.Report == nil || c.Report.Broker != "ssl://mqtt.example.com:8883" || c.Report.Heartbeat != 5*time.Minute {
		t.Fatalf("Load = %+v, %v", c.Report, err)
	}
	out, _ := c.Marshal()
	if back, err := Parse("x", out); err != nil || *back.Report != *c.Report {
		t.Fatalf("round trip: %+v, %v", back.Report, err)
	}
	for name, block := range map[string]string{
		"scheme":    "  broker: http://x\n",
		"prefix":    "  broker: tcp://h:1883\n  prefix: a/+/b\n",
		"heartbeat": "  broker: tcp://h:1883\n  heartbeat: 10s\n",
		"ca":        "  broker: tcp://h:1883\n  ca: not a certificate\n",
		"user":      "  broker: tcp://box:pw@h:1883\n",
	} {
		os.WriteFile(img, []byte(base+"report:\n"+block), 0o644)
		if _, err := Load(img, ovr); err == nil || !strings.Contains(err.Error(), "report:") {
			t.Errorf("%s: %v", name, err)
		}
	}
	os.WriteFile(img, []byte(base), 0o644)
	os.WriteFile(ovr, []byte("report:\n  broker: tcp://evil:1883\n"), 0o644)
	if _, err := Load(img, ovr); err == nil {
		t.Error("the override set the broker")
	}
}

func TestCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if _, err := LoadCredentials(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(path, []byte("user: box-1\npassword: \"p: w\"\n"), 0o600)
	if c, err := LoadCredentials(path); err != nil || c.User != "box-1" || c.Password != "p: w" {
		t.Fatalf("LoadCredentials = %+v, %v", c, err)
	}
	for _, bad := range []string{"user: box-1\n", "user: a/b\npassword: x\n", "user: a\npassword: x\nextra: 1\n"} {
		if _, err := ParseCredentials("f", []byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseCredentials("f", []byte("user: a\npassword: Hunter2\nuser: b\n")); err == nil || strings.Contains(err.Error(), "Hunter2") {
		t.Errorf("duplicate key: %v", err)
	}
}
