package provision

import (
	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/report"
)

// Fleet is the device's login at the team's MQTT broker, where the
// update agent reports (docs/fleet.md): written to
// config.CredentialsPath, mode 0600, never into the image.
type Fleet struct {
	User     string // the device's name on the broker, its topics' DEVICE
	Password string
	Line     int
	File     string
}

// FleetCredentials is where the credentials land.
const FleetCredentials = config.CredentialsPath

func (d doc) fleet(n *yaml.Node) (*Fleet, error) {
	fl := &Fleet{Line: n.Line, File: d.file}
	err := d.fields(n, "fleet", fleetKeys, func(key string, f field, k, v *yaml.Node) error {
		var err error
		switch key {
		case "user":
			fl.User, err = d.nonEmpty(v, f)
		case "password":
			fl.Password, err = d.nonEmpty(v, f)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, m := fl.render(); m != "" {
		return nil, d.errAt(n, "fleet", m)
	}
	return fl, nil
}

// render writes the credentials in the form the agent reads
// (config.ParseCredentials) and checks that they read back; the msg says
// what is wrong, never the values.
func (fl *Fleet) render() ([]byte, msg) {
	c := config.Credentials{User: fl.User, Password: fl.Password}
	switch {
	case fl.User == "" || fl.Password == "":
		return nil, "want user (the device's name on the broker) and password"
	case report.CheckDevice(fl.User) != nil:
		return nil, "user: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (it names the device's topics)"
	case c.Validate("") != nil:
		return nil, "password: at most 256 bytes, on one line"
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return nil, "the credentials cannot be written as YAML"
	}
	back, err := config.ParseCredentials("", data)
	if err != nil || back != c {
		return nil, "the credentials do not read back as written: the update agent would not read them"
	}
	return append([]byte("# Written by pibake-provision on first boot: this device's login at the fleet's MQTT broker.\n"), data...), ""
}

// fleetChange is the credentials file, root's, mode 0600.
func fleetChange(fl *Fleet) (change, error) {
	data, m := fl.render()
	if m != "" {
		return change{}, fail(fl.File, fl.Line, "fleet", m)
	}
	return change{path: FleetCredentials, data: data, mode: 0o600}, nil
}
