package imagedef

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pibake/pibake/updater/config"
)

// UpdaterReport is the updater section's report block: the team's MQTT
// broker the agent reports to (docs/fleet.md). The device's user name and
// password are never here: they come from each device's provisioning.
type UpdaterReport struct {
	Broker string `yaml:"broker"` // tcp://HOST:1883 or ssl://HOST:8883
	// CA is the broker's CA: PEM text, or a .pem/.crt file relative to the
	// repository (empty: the system's CAs).
	CA        string        `yaml:"ca"`
	Prefix    string        `yaml:"prefix"`    // topic prefix, default "pibake"
	Heartbeat time.Duration `yaml:"heartbeat"` // default 15m
}

// ReportConfig is the report block as the image's updater.yaml carries it
// (the CA read from its file), nil without one.
func (d *Definition) ReportConfig() (*config.Report, error) {
	if d.Updater == nil || d.Updater.Report == nil {
		return nil, nil
	}
	r := d.Updater.Report
	ca := r.CA
	if ca != "" && !strings.Contains(ca, "-----BEGIN") {
		data, err := os.ReadFile(filepath.Join(d.Dir, filepath.FromSlash(ca)))
		if err != nil {
			return nil, fmt.Errorf("report: ca: %w (give the broker's CA certificate as PEM text or a file in the repository)", err)
		}
		ca = string(data)
	}
	c := &config.Report{Broker: r.Broker, CA: ca, Prefix: r.Prefix, Heartbeat: r.Heartbeat}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
