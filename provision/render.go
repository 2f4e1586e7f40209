package provision

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"

	"github.com/pibake/pibake/updater/config"
	"go.yaml.in/yaml/v3"
)

// Paths in the target root that provisioning writes (the ones under /etc
// land on the data partition's overlay, never on a slot).
const (
	HostnamePath    = "/etc/hostname"
	HostsPath       = "/etc/hosts"
	WPAPath         = "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
	WPAUnit         = "wpa_supplicant@wlan0.service"
	KeysDir         = "/etc/ssh/authorized_keys.d" // sshd reads %u there: the image's sshd_config.d drop-in
	SSHDropIn       = "/etc/ssh/sshd_config.d/pibake-provision.conf"
	ShadowPath      = "/etc/shadow"
	LocaltimePath   = "/etc/localtime"
	TimezonePath    = "/etc/timezone"
	ZoneinfoDir     = "/usr/share/zoneinfo"
	DataDir         = "/data"
	RecordPath      = "/data/pibake/provisioned"     // the sets of files applied (record.go)
	RecordKeyPath   = "/data/pibake/provisioned.key" // the key of RecordPath's marks
	ImageConfig     = config.ImagePath
	UpdaterOverride = config.OverridePath
)

// wpaConf renders wpa_supplicant's file for wlan0. A passphrase is stored
// as the PSK wpa_passphrase would derive (PBKDF2-SHA1, 4096 rounds, the
// SSID as salt): the plaintext never lands on the device, and there is
// nothing left to escape.
func wpaConf(w *WiFi) []byte {
	var b strings.Builder
	b.WriteString("# Written by pibake-provision on first boot. Edit, or provision again.\n")
	b.WriteString("ctrl_interface=/run/wpa_supplicant\n") // root only: the image may have no netdev group
	b.WriteString("update_config=0\n")
	fmt.Fprintf(&b, "country=%s\n", w.Country)
	for _, n := range w.Networks {
		b.WriteString("\nnetwork={\n")
		fmt.Fprintf(&b, "\tssid=%s\n", ssidField(n.SSID))
		if n.Hidden {
			b.WriteString("\tscan_ssid=1\n")
		}
		switch {
		case n.Open:
			b.WriteString("\tkey_mgmt=NONE\n")
		case n.PSK != "":
			fmt.Fprintf(&b, "\tkey_mgmt=WPA-PSK\n\tpsk=%s\n", strings.ToLower(n.PSK))
		default:
			fmt.Fprintf(&b, "\tkey_mgmt=WPA-PSK\n\tpsk=%s\n", derivePSK(n.Passphrase, n.SSID))
		}
		b.WriteString("}\n")
	}
	return []byte(b.String())
}

// derivePSK is IEEE 802.11i's passphrase-to-PSK mapping.
func derivePSK(passphrase string, ssid []byte) string {
	k, err := pbkdf2.Key(sha1.New, passphrase, ssid, 4096, 32)
	if err != nil {
		panic(err) // only for FIPS-140 only mode and out of range lengths
	}
	return hex.EncodeToString(k)
}

// override renders the update agent's override in exactly the form
// config.ParseOverride reads, and checks it with it; the msg says what is
// wrong, "" when nothing is.
func (u *Updater) override() ([]byte, msg) {
	o := config.Override{Server: u.Server, Channel: u.Channel, Poll: u.Poll}
	if u.Server != "" {
		p, err := url.Parse(u.Server)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, "server: want an http:// or https:// URL of the update repository"
		}
		if p.User != nil {
			return nil, "server: credentials in the URL are refused (the repository is public, its documents are signed)"
		}
	}
	data, err := yaml.Marshal(o)
	if err != nil {
		return nil, "the override cannot be written as YAML"
	}
	back, err := config.ParseOverride("updater override", data)
	if err != nil || back != o {
		return nil, "the override does not read back as written: the update agent would not read it"
	}
	return append([]byte("# Written by pibake-provision on first boot.\n"), data...), ""
}

// hostsWith replaces the 127.0.1.1 line of /etc/hosts (or adds one).
func hostsWith(old []byte, hostname string) []byte {
	line := "127.0.1.1\t" + hostname
	var out []string
	done := false
	for _, l := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "127.0.1.1" {
			if !done {
				out = append(out, line)
				done = true
			}
			continue
		}
		if l != "" || len(out) > 0 {
			out = append(out, l)
		}
	}
	if !done {
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// shadowWith replaces the password field of the named users, leaving
// every other byte of /etc/shadow as it was.
func shadowWith(old []byte, hashes map[string]string) ([]byte, error) {
	lines := strings.SplitAfter(string(old), "\n")
	found := map[string]bool{}
	for i, l := range lines {
		body := strings.TrimSuffix(l, "\n")
		f := strings.Split(body, ":")
		if len(f) < 2 {
			continue
		}
		h, ok := hashes[f[0]]
		if !ok {
			continue
		}
		if found[f[0]] {
			return nil, fmt.Errorf("%s has two lines for user %s: fix the image", ShadowPath, f[0])
		}
		found[f[0]] = true
		f[1] = h
		lines[i] = strings.Join(f, ":") + strings.TrimPrefix(l, body)
	}
	for u := range hashes {
		if !found[u] {
			return nil, fmt.Errorf("%s has no line for user %s", ShadowPath, u)
		}
	}
	return []byte(strings.Join(lines, "")), nil
}

func sshDropIn(pwauth bool) []byte {
	v := "no"
	if pwauth {
		v = "yes"
	}
	return []byte("# Written by pibake-provision on first boot.\nPasswordAuthentication " + v + "\n")
}
