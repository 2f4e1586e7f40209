package imagedef

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/internal/servicetest"
)

// TestReportConfig: the report block becomes the agent's, its CA read
// from the repository; a bad one names what is wrong.
func TestReportConfig(t *testing.T) {
	dir := t.TempDir()
	pem := servicetest.TestCA(t, dir)
	d := &Definition{Dir: dir, Updater: &Updater{Report: &UpdaterReport{Broker: "ssl://mqtt.example.com:8883", CA: filepath.Base(pem)}}}
	c, err := d.ReportConfig()
	if err != nil || !strings.Contains(c.CA, "BEGIN CERTIFICATE") || c.Broker != "ssl://mqtt.example.com:8883" {
		t.Fatalf("ReportConfig = %+v, %v", c, err)
	}
	if c, err := (&Definition{Updater: &Updater{}}).ReportConfig(); c != nil || err != nil {
		t.Fatalf("no block: %+v, %v", c, err)
	}
	for name, r := range map[string]UpdaterReport{
		"missing ca":  {Broker: "ssl://h:8883", CA: "nope.pem"},
		"http":        {Broker: "http://h"},
		"credentials": {Broker: "tcp://dev:secret@h:1883"},
		"not pem":     {Broker: "ssl://h:8883", CA: "-----BEGIN nonsense"},
	} {
		d := &Definition{Dir: dir, Updater: &Updater{Report: &r}}
		if _, err := d.ReportConfig(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := os.Stat(pem); err != nil {
		t.Fatal(err)
	}
}
