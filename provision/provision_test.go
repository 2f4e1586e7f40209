package provision

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	hash6 = "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."
	hash5 = "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM."
	hashY = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"
)

// sshKey is a real OpenSSH public key line.
func sshKey(t testing.TB, seed byte) string {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	pub = append([]byte(nil), pub...)
	pub[0] ^= seed
	var blob []byte
	for _, s := range [][]byte{[]byte("ssh-ed25519"), pub} {
		blob = binary.BigEndian.AppendUint32(blob, uint32(len(s)))
		blob = append(blob, s...)
	}
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(blob) + " me@laptop"
}

const goodFile = `# pibake-provision.yaml
version: 1
hostname: box-17
wifi:
  country: FR
  networks:
    - ssid: Home
      passphrase: "correct horse battery"
    - ssid: "Lab \"5G\""
      psk: 8d8f1f9a8d8f1f9a8d8f1f9a8d8f1f9a8d8f1f9a8d8f1f9a8d8f1f9a8d8f1f9a
      hidden: true
    - ssid_hex: c3a9c3a9
      open: true
users:
  - name: pi
    ssh_keys:
      - KEY
    password_hash: "HASH"
ssh_password_auth: false
timezone: Europe/Paris
files:
  - path: app/config.json
    mode: "0640"
    owner: pi:pi
    content: |
      {"site": "lyon"}
  - path: app/blob.bin
    base64: AAEC
updater:
  channel: beta
  poll: 30m
`

func good(t testing.TB) string {
	return strings.NewReplacer("KEY", sshKey(t, 1), "HASH", hash6).Replace(goodFile)
}

func TestHashes(t *testing.T) {
	for _, h := range []string{hash6, hash5, hashY} {
		if m := checkHash(h); m != "" {
			t.Errorf("%s: %v", h, m)
		}
	}
	for _, h := range []string{"secret", "$1$abc$def", "!" + hash6, "$6$abcdefgh$short", "*", ""} {
		if m := checkHash(h); m == "" {
			t.Errorf("%q accepted", h)
		} else if h != "" && strings.Contains(string(m), h) {
			t.Errorf("the message repeats the value: %v", m)
		}
	}
}

func TestParseGood(t *testing.T) {
	s, err := Parse(FileName, []byte(good(t)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "box-17" || s.WiFi.Country != "FR" || len(s.WiFi.Networks) != 3 || s.TimeZone != "Europe/Paris" {
		t.Errorf("%+v", s)
	}
	if n := s.WiFi.Networks[2]; string(n.SSID) != "éé" || !n.Open {
		t.Errorf("ssid_hex: %+v", n)
	}
	if f := s.Files[0]; f.Mode != 0o640 || f.Owner != "pi:pi" || string(f.Data) != "{\"site\": \"lyon\"}\n" {
		t.Errorf("file: %+v", f)
	}
	if string(s.Files[1].Data) != "\x00\x01\x02" {
		t.Errorf("base64: %q", s.Files[1].Data)
	}
	if s.Updater.Channel != "beta" || s.Updater.Poll.Minutes() != 30 || *s.SSHPasswordAuth {
		t.Errorf("updater: %+v", s.Updater)
	}
	if err := Validate([]byte(good(t))); err != nil {
		t.Error(err)
	}
}

// TestParseErrors: every refusal names the line and the field, and no
// message carries the secret.
func TestParseErrors(t *testing.T) {
	const secret = "hunter2hunter2"
	for _, c := range []struct{ name, body, want string }{
		{"unknown top field", "hostname: a\nhostnme: b\n", "pibake-provision.yaml:2: unknown field: did you mean hostname? (known: files, fleet, hostname,"},
		{"unknown network field", "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      pasphrase: " + secret + "\n", ":5: wifi.networks.0: unknown field: did you mean passphrase? (known: hidden, open, passphrase, psk, ssid, ssid_hex)"},
		{"wrong type", "hostname: [a]\n", ":1: hostname: want a string, got a list"},
		{"number ssid", "wifi:\n  country: FR\n  networks:\n    - ssid: 1234\n      open: true\n", ":4: wifi.networks.0.ssid: want a string, got a number (put it in quotes)"},
		{"short passphrase", "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      passphrase: short\n", ":5: wifi.networks.0.passphrase: want 8 to 63"},
		{"long passphrase", "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      passphrase: " + strings.Repeat(secret, 5) + "\n", ":5: wifi.networks.0.passphrase: want 8 to 63"},
		{"bad psk", "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      psk: " + strings.Repeat("g", 64) + "\n", ":5: wifi.networks.0.psk: want exactly 64 hex"},
		{"both keys", "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      passphrase: " + secret + "\n      open: true\n", ":4: wifi.networks.0: want exactly one of passphrase"},
		{"no country", "wifi:\n  networks:\n    - ssid: x\n      open: true\n", ":2: wifi.country: missing"},
		{"lower country", "wifi:\n  country: fr\n  networks:\n    - {ssid: x, open: true}\n", ":2: wifi.country: not a two-letter"},
		{"long ssid", "wifi:\n  country: FR\n  networks:\n    - {ssid: " + strings.Repeat("x", 33) + ", open: true}\n", ":4: wifi.networks.0.ssid: longer than 32 octets"},
		{"plaintext password", "users:\n  - name: pi\n    password_hash: " + secret + "\n", ":3: users.0.password_hash: not a yescrypt"},
		{"key with options", "users:\n  - name: pi\n    ssh_keys: ['command=\"/bin/sh\" ssh-ed25519 AAAA']\n", ":3: users.0.ssh_keys.0: unknown key type"},
		{"absolute path", "files:\n  - {path: /etc/shadow, content: x}\n", ":2: files.0.path: want a path relative to /data"},
		{"dotdot", "files:\n  - {path: app/../../etc/x, content: x}\n", ":2: files.0.path: '..' is refused"},
		{"system dir", "files:\n  - {path: pibake/overlay/etc/upper/x, content: x}\n", ":2: files.0.path: /data/pibake belongs to the system"},
		{"setuid", "files:\n  - {path: a, mode: \"4755\", content: x}\n", ":2: files.0.mode: want permission bits"},
		{"bare mode", "files:\n  - {path: a, mode: 0644, content: x}\n", ":2: files.0.mode: put the mode in quotes"},
		{"no content", "files:\n  - {path: a}\n", ":2: files.0: want exactly one of content"},
		{"updater field", "updater:\n  keys: [RWSx]\n", ":2: updater: unknown field (known: channel, poll, server)"},
		{"updater url", "updater:\n  server: ftp://x\n", ":2: updater: server: want an http"},
		{"updater creds", "updater:\n  server: https://u:" + secret + "@x/\n", ":2: updater: server: credentials"},
		{"short poll", "updater:\n  poll: 5s\n", ":2: updater.poll: want a duration of at least a minute"},
		{"malformed", "hostname: a\nwifi: [\n", "pibake-provision.yaml:2: malformed YAML"},
		{"tabs", "hostname: a\n\tusers: x\n", "malformed YAML"},
		{"alias", "hostname: &h a\ntimezone: *h\n", ":2: timezone: YAML aliases"},
		{"twice", "hostname: a\nhostname: b\n", ":2: hostname: given twice"},
		{"empty", "# nothing\n", "the file sets nothing"},
		{"list", "- a\n", ":1: want a YAML mapping"},
		{"version", "version: 2\nhostname: a\n", ":1: version: want 1"},
		{"bad hostname", "hostname: -box\n", ":1: hostname: not a valid host name"},
		{"bad tz", "timezone: ../../etc/passwd\n", ":1: timezone: "},
		{"user sets nothing", "users:\n  - name: pi\n", ":2: users.0: sets nothing"},
	} {
		_, err := Parse(FileName, []byte(c.body))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v\n  want %q", c.name, err, c.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", c.name, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the message carries the secret: %v", c.name, err)
		}
	}
}

func TestWPAConf(t *testing.T) {
	s, err := Parse(FileName, []byte(good(t)))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(wpaConf(s.WiFi))
	for _, want := range []string{
		"country=FR\n",
		"\tssid=\"Home\"\n\tkey_mgmt=WPA-PSK\n\tpsk=",
		// '"' cannot be quoted for wpa_supplicant: hex.
		"\tssid=4c61622022354722\n\tscan_ssid=1\n\tkey_mgmt=WPA-PSK\n\tpsk=8d8f1f9a",
		"\tssid=c3a9c3a9\n\tkey_mgmt=NONE\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("missing %q in\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "correct horse") {
		t.Error("the passphrase is stored in clear")
	}
	// IEEE 802.11i's test vector (also what wpa_passphrase prints).
	if got := derivePSK("password", []byte("IEEE")); got != "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e" {
		t.Errorf("PSK %s", got)
	}
}

func TestOverrideRoundTrip(t *testing.T) {
	s, err := Parse(FileName, []byte("updater:\n  server: https://updates.example/repo\n  channel: beta\n  poll: 1h\n"))
	if err != nil {
		t.Fatal(err)
	}
	data, m := s.Updater.override()
	if m != "" {
		t.Fatal(m)
	}
	t.Logf("%s", data)
	if !strings.Contains(string(data), "channel: beta\n") || !strings.Contains(string(data), "poll: 1h0m0s\n") {
		t.Errorf("%s", data)
	}
}

func TestDataPathSymlink(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "data"), 0o755)
	os.Symlink("/etc", filepath.Join(root, "data", "app"))
	if m := checkUnder(root, "/data", "app/x"); m == "" || !strings.Contains(string(m), "symlink") {
		t.Errorf("through a symlink: %q", m)
	}
}
