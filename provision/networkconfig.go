package provision

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseNetworkConfig reads the netplan (version 2) network-config Imager
// writes: wired links are left to DHCP, wlan0's access points become
// Spec.WiFi; regdom is the country cmdline.txt gives, if any.
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
