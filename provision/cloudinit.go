package provision

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/internal/yamlerr"
)

// The cloud-init NoCloud files Raspberry Pi Imager writes to the first FAT
// partition with init_format cloudinit-rpi.
const (
	UserData      = "user-data"
	NetworkConfig = "network-config"
	MetaData      = "meta-data"
)

// CloudInit holds the NoCloud files found (nil: absent). Cmdline is
// cmdline.txt of the same partition, where Imager also puts the Wi-Fi
// country (cfg80211.ieee80211_regdom=XX).
type CloudInit struct {
	UserData, NetworkConfig, MetaData, Cmdline []byte
}

var regdomRe = regexp.MustCompile(`(?:^|\s)cfg80211\.ieee80211_regdom=([A-Za-z]{2})(?:\s|$)`)

// ParseCloudInit maps the subset of cloud-init that Imager writes onto a
// Spec. Malformed YAML, a wrong type or a value pibake would apply but
// cannot (a plaintext password, a bad passphrase) is an error and nothing
// applies; a setting pibake does not apply is named in Spec.NotApplied
// and the rest applies (docs/provisioning.md, "cloud-init").
func ParseCloudInit(ci CloudInit) (*Spec, error) {
	s := &Spec{}
	var metaHost string
	if ci.MetaData != nil {
		s.Sources = append(s.Sources, MetaData)
		h, err := parseMetaData(s, ci.MetaData)
		if err != nil {
			return nil, err
		}
		metaHost = h
	}
	if ci.UserData != nil {
		s.Sources = append(s.Sources, UserData)
		if err := parseUserData(s, ci.UserData); err != nil {
			return nil, err
		}
	}
	if ci.NetworkConfig != nil {
		s.Sources = append(s.Sources, NetworkConfig)
		regdom := ""
		if m := regdomRe.FindSubmatch(ci.Cmdline); m != nil {
			regdom = strings.ToUpper(string(m[1]))
		}
		if err := parseNetworkConfig(s, ci.NetworkConfig, regdom); err != nil {
			return nil, err
		}
	}
	if s.Hostname == "" && metaHost != "" && !contains(s.NotApplied, "user-data: preserve_hostname") {
		s.Hostname = metaHost
	}
	sort.Strings(s.NotApplied)
	return s, s.Validate()
}

func parseMetaData(s *Spec, data []byte) (string, error) {
	d := doc{file: MetaData, src: data}
	top, err := d.load(data)
	if err != nil || top == nil {
		return "", err
	}
	var host string
	err = d.fields(top, "", nil, func(key string, k, v *yaml.Node) error {
		switch key {
		case "instance-id":
			_, err := d.str(v, key)
			return err
		case "local-hostname":
			h, err := d.nonEmpty(v, key)
			if err == nil {
				if err := checkHostname(h); err != nil {
					return d.errAt(v, key, "%v", err)
				}
			}
			host = h
			return err
		}
		s.NotApplied = append(s.NotApplied, MetaData+": "+key)
		return nil
	})
	return host, err
}

// userDataKeys are the top-level keys pibake applies; every other key is
// listed as not applied.
var userDataKeys = []string{"hostname", "manage_etc_hosts", "preserve_hostname", "timezone", "user", "users", "ssh_pwauth", "manage_resolv_conf"}

func parseUserData(s *Spec, data []byte) error {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	first = bytes.TrimRight(first, " \t\r")
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return nil
	case bytes.HasPrefix(first, []byte("#!")):
		return &yamlerr.Error{File: UserData, Line: 1, Msg: "a script: pibake runs no commands from the boot partition (nothing was applied); use #cloud-config settings or pibake-provision.yaml"}
	case !bytes.Equal(first, []byte("#cloud-config")):
		return &yamlerr.Error{File: UserData, Line: 1, Msg: "does not start with #cloud-config: only cloud-config user data is read (no MIME multipart, #include or scripts); nothing was applied"}
	}
	d := doc{file: UserData, src: data}
	top, err := d.load(data)
	if err != nil || top == nil {
		return err
	}
	var preserve bool
	var host string
	err = d.fields(top, "", nil, func(key string, k, v *yaml.Node) error {
		switch key {
		case "hostname":
			h, err := d.nonEmpty(v, key)
			if err != nil {
				return err
			}
			if err := checkHostname(h); err != nil {
				return d.errAt(v, key, "%v", err)
			}
			host = h
		case "preserve_hostname":
			b, err := d.boolean(v, key)
			preserve = b
			return err
		case "manage_etc_hosts":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
				b, _ := d.boolean(v, key)
				s.KeepHosts = !b
				return nil
			}
			m, err := d.str(v, key)
			if err != nil || (m != "localhost" && m != "template") {
				return d.errAt(v, key, "want true, false, localhost or template")
			}
		case "timezone":
			tz, err := d.nonEmpty(v, key)
			if err != nil {
				return err
			}
			if err := checkTimeZone(tz); err != nil {
				return d.errAt(v, key, "%v", err)
			}
			s.TimeZone = tz
		case "user":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				return nil // a name alone sets nothing pibake applies
			}
			u, err := d.ciUser(s, v, key)
			if err != nil {
				return err
			}
			s.addUser(u)
		case "users":
			items, err := d.seq(v, key)
			if err != nil {
				return err
			}
			for i, it := range items {
				f := key + "." + strconv.Itoa(i)
				if it.Kind == yaml.ScalarNode && it.Tag == "!!str" {
					if it.Value != "default" {
						s.NotApplied = append(s.NotApplied, UserData+": "+f+" (a user by name only: pibake creates no users)")
					}
					continue
				}
				u, err := d.ciUser(s, it, f)
				if err != nil {
					return err
				}
				s.addUser(u)
			}
		case "ssh_pwauth":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!str" && v.Value == "unchanged" {
				return nil
			}
			b, err := d.boolean(v, key)
			if err != nil {
				return err
			}
			s.SSHPasswordAuth = &b
		case "manage_resolv_conf":
			_, err := d.boolean(v, key) // pibake's image uses systemd-resolved: nothing to do
			return err
		default:
			s.NotApplied = append(s.NotApplied, UserData+": "+key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if host != "" {
		if preserve {
			s.NotApplied = append(s.NotApplied, UserData+": hostname (preserve_hostname: true)")
		} else {
			s.Hostname = host
		}
	}
	return nil
}

// addUser merges entries for the same user (cloud-init's user: and users:).
func (s *Spec) addUser(u User) {
	for i := range s.Users {
		if s.Users[i].Name == u.Name {
			s.Users[i].Keys = append(s.Users[i].Keys, u.Keys...)
			if u.PasswordHash != "" {
				s.Users[i].PasswordHash = u.PasswordHash
			}
			s.Users[i].Lock = u.Lock
			return
		}
	}
	s.Users = append(s.Users, u)
}

// ciUser reads one cloud-init user. lock_passwd defaults to true, as in
// cloud-init: a hash without lock_passwd: false is stored locked.
func (d doc) ciUser(s *Spec, n *yaml.Node, field string) (User, error) {
	u := User{Line: n.Line, File: d.file, Lock: true}
	err := d.fields(n, field, nil, func(key string, k, v *yaml.Node) error {
		f := field + "." + key
		var err error
		switch key {
		case "name":
			if u.Name, err = d.nonEmpty(v, f); err == nil && !userName.MatchString(u.Name) {
				return d.errAt(v, f, "%q is not a user name", truncate(u.Name, 40))
			}
		case "passwd", "hashed_passwd":
			if u.PasswordHash, err = d.nonEmpty(v, f); err == nil {
				if err := CheckPasswordHash(u.PasswordHash); err != nil {
					return d.errAt(v, f, "%v", err)
				}
			}
		case "plain_text_passwd":
			return d.errAt(v, f, "a plaintext password is never applied (nothing was): give passwd: with a crypt hash (mkpasswd -m yescrypt)")
		case "lock_passwd":
			u.Lock, err = d.boolean(v, f)
		case "ssh_authorized_keys":
			var keys []string
			if keys, err = d.strings(v, f); err != nil {
				return err
			}
			for i, key := range keys {
				if err := checkKey(strings.TrimSpace(key)); err != nil {
					return d.errAt(v.Content[i], f+"."+strconv.Itoa(i), "%v", err)
				}
				u.Keys = append(u.Keys, strings.TrimSpace(key))
			}
		default:
			// shell, groups, sudo, gecos, ...: the account is the image's.
			s.NotApplied = append(s.NotApplied, UserData+": "+f)
		}
		return err
	})
	if err == nil && u.Name == "" {
		err = d.errAt(n, field+".name", "missing: which user of the image")
	}
	return u, err
}

func parseNetworkConfig(s *Spec, data []byte, regdom string) error {
	d := doc{file: NetworkConfig, src: data}
	top, err := d.load(data)
	if err != nil || top == nil {
		return err
	}
	prefix := ""
	if len(top.Content) == 2 && top.Content[0].Value == "network" {
		prefix, top = "network", top.Content[1]
	}
	var version bool
	return d.fields(top, prefix, nil, func(key string, k, v *yaml.Node) error {
		f := join(prefix, key)
		switch key {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Value != "2" {
				return d.errAt(v, f, "want 2 (netplan style, as Raspberry Pi Imager writes it); version 1 is not read")
			}
			version = true
		case "ethernets":
			// The image's systemd-networkd runs DHCP on every wired link:
			// only a DHCP request matches what it does already.
			return d.fields(v, f, nil, func(iface string, _, cfg *yaml.Node) error {
				return d.fields(cfg, f+"."+iface, nil, func(key string, _, val *yaml.Node) error {
					if (key == "dhcp4" || key == "dhcp6") && val.Tag == "!!bool" && val.Value == "true" || key == "optional" {
						return nil
					}
					s.NotApplied = append(s.NotApplied, NetworkConfig+": "+f+"."+iface+"."+key+" (wired links use DHCP)")
					return nil
				})
			})
		case "wifis":
			if !version {
				return d.errAt(k, f, "version: 2 must come first")
			}
			return d.fields(v, f, nil, func(iface string, _, cfg *yaml.Node) error {
				if iface != "wlan0" {
					s.NotApplied = append(s.NotApplied, NetworkConfig+": "+f+"."+iface+" (only wlan0 is configured)")
					return nil
				}
				return d.wlan(s, cfg, f+"."+iface, regdom)
			})
		default:
			s.NotApplied = append(s.NotApplied, NetworkConfig+": "+f)
		}
		return nil
	})
}

func (d doc) wlan(s *Spec, n *yaml.Node, field, regdom string) error {
	w := &WiFi{Country: regdom}
	var aps *yaml.Node
	err := d.fields(n, field, nil, func(key string, k, v *yaml.Node) error {
		f := field + "." + key
		switch key {
		case "regulatory-domain":
			c, err := d.nonEmpty(v, f)
			if err != nil {
				return err
			}
			c = strings.ToUpper(c)
			if err := checkCountry(c); err != nil {
				return d.errAt(v, f, "%v", err)
			}
			w.Country = c
		case "access-points":
			aps = v
		case "dhcp4", "dhcp6", "optional":
			if key != "optional" && !(v.Tag == "!!bool" && v.Value == "true") {
				s.NotApplied = append(s.NotApplied, NetworkConfig+": "+f+" (wlan0 uses DHCP)")
			}
		default:
			s.NotApplied = append(s.NotApplied, NetworkConfig+": "+f+" (wlan0 uses DHCP)")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if aps == nil {
		return d.errAt(n, field+".access-points", "missing: no network to join")
	}
	err = d.fields(aps, field+".access-points", nil, func(_ string, k, v *yaml.Node) error {
		ssid, err := d.ssidKey(k)
		if err != nil {
			return err
		}
		nw, ok, err := d.accessPoint(s, v, field+".access-points."+ssidLabel(ssid), ssid)
		if err != nil || !ok {
			return err
		}
		nw.Line = k.Line
		w.Networks = append(w.Networks, nw)
		return nil
	})
	if err != nil {
		return err
	}
	if len(w.Networks) == 0 {
		return nil
	}
	if w.Country == "" {
		return d.errAt(n, field+".regulatory-domain", "missing (and no cfg80211.ieee80211_regdom= in cmdline.txt): the radio needs its country, e.g. regulatory-domain: \"FR\"")
	}
	if s.WiFi != nil {
		return d.errAt(n, field, "wlan0 given twice")
	}
	s.WiFi = w
	return nil
}

// ssidKey reads an access point's SSID. Imager writes each octet of a
// non-ASCII SSID as \xHH in a double-quoted key, which YAML reads as the
// code point U+00HH: such a key is turned back into those octets.
func (d doc) ssidKey(k *yaml.Node) ([]byte, error) {
	if k.Kind != yaml.ScalarNode || k.Value == "" {
		return nil, d.errAt(k, "access-points", "an SSID must be a non-empty string")
	}
	raw := ""
	if lines := bytes.Split(d.src, []byte("\n")); k.Line >= 1 && k.Line <= len(lines) {
		l := lines[k.Line-1]
		if k.Column >= 1 && k.Column <= len(l) {
			raw = string(l[k.Column-1:])
		}
	}
	if k.Style == yaml.DoubleQuotedStyle && strings.Contains(raw, `\x`) {
		out := make([]byte, 0, len(k.Value))
		for _, r := range k.Value {
			if r > 0xff {
				return nil, d.errAt(k, "access-points", "an SSID mixes \\x escapes and characters beyond U+00FF: write it either as \\xHH octets or as plain text")
			}
			out = append(out, byte(r))
		}
		return out, nil
	}
	return []byte(k.Value), nil
}

func ssidLabel(ssid []byte) string {
	return strconv.Quote(truncate(string(ssid), 32))
}

// accessPoint reads one netplan access point; ok is false for one pibake
// cannot join (listed as not applied).
func (d doc) accessPoint(s *Spec, n *yaml.Node, field string, ssid []byte) (Network, bool, error) {
	nw := Network{SSID: ssid, File: d.file}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		nw.Open = true
		return nw, true, nil
	}
	var password string
	var passwordNode *yaml.Node
	keyMgmt, otherAuth := "", ""
	err := d.fields(n, field, nil, func(key string, k, v *yaml.Node) error {
		f := field + "." + key
		var err error
		switch key {
		case "password":
			password, err = d.nonEmpty(v, f)
			passwordNode = v
		case "hidden":
			nw.Hidden, err = d.boolean(v, f)
		case "auth":
			err = d.fields(v, f, nil, func(key string, _, av *yaml.Node) error {
				switch key {
				case "key-management":
					var e error
					keyMgmt, e = d.nonEmpty(av, f+"."+key)
					return e
				case "password":
					var e error
					password, e = d.nonEmpty(av, f+"."+key)
					passwordNode = av
					return e
				}
				otherAuth = key
				return nil
			})
		default:
			s.NotApplied = append(s.NotApplied, NetworkConfig+": "+f)
		}
		return err
	})
	if err != nil {
		return nw, false, err
	}
	if otherAuth != "" {
		s.NotApplied = append(s.NotApplied, fmt.Sprintf("%s: %s (auth.%s: pibake joins WPA-PSK and open networks only)", NetworkConfig, field, otherAuth))
		return nw, false, nil
	}
	switch keyMgmt {
	case "none":
		if password != "" {
			return nw, false, d.errAt(n, field, "key-management none with a password: give one or the other")
		}
		nw.Open = true
	case "", "psk":
		switch {
		case password == "" && keyMgmt == "":
			nw.Open = true
		case hex64.MatchString(password):
			nw.PSK = password
		case passphraseOK(password):
			nw.Passphrase = password
		default:
			return nw, false, d.errAt(passwordNode, field+".password", "want 8 to 63 printable ASCII characters or 64 hex digits (WPA-PSK)")
		}
	default:
		s.NotApplied = append(s.NotApplied, fmt.Sprintf("%s: %s (key-management %s: pibake joins WPA-PSK and open networks only)", NetworkConfig, field, truncate(keyMgmt, 20)))
		return nw, false, nil
	}
	return nw, true, nil
}
