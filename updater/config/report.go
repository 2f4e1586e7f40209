package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/pibake/pibake/internal/yamlerr"
)

// Report says where the agent reports its state (docs/fleet.md): the
// team's MQTT broker, the CA its TLS certificate chains to, the topic
// prefix and the heartbeat. It comes from the definition's
// updater.report block, in the signed image only; the device's own
// user name and password come from first-boot provisioning
// (CredentialsPath), never from the image.
type Report struct {
	// Broker is tcp://HOST:1883 or ssl://HOST:8883 (also mqtt://,
	// mqtts://, tls://).
	Broker string `yaml:"broker"`
	// CA is PEM text: the certificates the broker's must chain to (empty:
	// the system's).
	CA string `yaml:"ca,omitempty"`
	// Prefix is the topics' prefix (default report.DefaultPrefix).
	Prefix string `yaml:"prefix,omitempty"`
	// Heartbeat is how often the state is sent again when nothing changed
	// (default DefaultHeartbeat).
	Heartbeat time.Duration `yaml:"heartbeat,omitempty"`
}

// DefaultHeartbeat is the report's heartbeat when the definition names none.
const DefaultHeartbeat = 15 * time.Minute

// CredentialsPath is where first-boot provisioning stores the device's
// broker user name and password (mode 0600, root's).
const CredentialsPath = "/data/pibake/fleet.yaml"

// Credentials are the device's own login at the broker: its user name is
// the DEVICE of its topics.
type Credentials struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// Validate checks a report block; the error names the field.
func (r Report) Validate() error {
	u, err := url.Parse(r.Broker)
	switch {
	case r.Broker == "":
		return errors.New("report: no broker (tcp://HOST:1883 or ssl://HOST:8883)")
	case err != nil || u.Host == "" || !brokerSchemes[u.Scheme]:
		return fmt.Errorf("report: broker %q: want tcp://HOST:PORT or ssl://HOST:PORT (also mqtt, mqtts, tls)", r.Broker)
	case u.User != nil:
		return fmt.Errorf("report: broker %q carries credentials: they come from each device's provisioning (fleet:), never from the image", r.Broker)
	case r.Prefix != "" && !validPrefix(r.Prefix):
		return fmt.Errorf("report: prefix %q: want topic levels of letters, digits, '.', '_' and '-' separated by '/', no wildcards", r.Prefix)
	case r.Heartbeat != 0 && r.Heartbeat < time.Minute:
		return fmt.Errorf("report: heartbeat %s is shorter than a minute", r.Heartbeat)
	}
	if r.CA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(r.CA)) {
		return errors.New("report: ca holds no PEM certificate")
	}
	return nil
}

// deviceName is report.CheckDevice's rule (the builder, which imports
// this package, may not import updater/report; TestCredentialsNames in
// updater/reporter keeps the two the same).
var deviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

var brokerSchemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true}

func validPrefix(p string) bool {
	if len(p) > 64 {
		return false
	}
	for _, level := range strings.Split(p, "/") {
		if level == "" {
			return false
		}
		for _, c := range level {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ParseCredentials reads the credentials file strictly.
func ParseCredentials(name string, data []byte) (Credentials, error) {
	var c Credentials
	if err := yamlerr.Unmarshal(name, data, &c); err != nil {
		return c, err
	}
	return c, c.Validate(name)
}

// Validate checks the credentials; the message never repeats the
// password.
func (c Credentials) Validate(name string) error {
	switch {
	case c.User == "" || c.Password == "":
		return fmt.Errorf("%s: want both user and password", name)
	case !deviceName.MatchString(c.User):
		return fmt.Errorf("%s: user: want 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit: it names the device's topics", name)
	case len(c.Password) > 256 || strings.ContainsAny(c.Password, "\x00\r\n"):
		return fmt.Errorf("%s: password: at most 256 bytes on one line", name)
	}
	return nil
}

// LoadCredentials reads the device's credentials; os.ErrNotExist (wrapped)
// when provisioning gave none.
func LoadCredentials(path string) (Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("broker credentials: %w", err)
	}
	return ParseCredentials(path, data)
}
