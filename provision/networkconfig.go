package provision

import (
	"bytes"
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
	prefix := field("")
	if len(top.Content) == 2 && top.Content[0].Value == "network" {
		prefix, top = "network", top.Content[1]
	}
	var version bool
	return d.fields(top, prefix, nil, func(key string, f field, k, v *yaml.Node) error {
		switch key {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Value != "2" {
				return d.errAt(v, f, "want 2 (netplan style, as Raspberry Pi Imager writes it); version 1 is not read")
			}
			version = true
		case "ethernets":
			// The image's systemd-networkd runs DHCP on every wired link:
			// only a DHCP request matches what it does already.
			return d.fields(v, f, nil, func(_ string, fi field, _, cfg *yaml.Node) error {
				return d.fields(cfg, fi, nil, func(key string, fk field, k, val *yaml.Node) error {
					if (key == "dhcp4" || key == "dhcp6") && val.Tag == "!!bool" && val.Value == "true" || key == "optional" {
						return nil
					}
					d.notApplied(s, k, fk, "wired links use DHCP")
					return nil
				})
			})
		case "wifis":
			if !version {
				return d.errAt(k, f, "version: 2 must come first")
			}
			return d.fields(v, f, nil, func(iface string, fi field, k, cfg *yaml.Node) error {
				if iface != "wlan0" {
					d.notApplied(s, k, fi, "only wlan0 is configured")
					return nil
				}
				return d.wlan(s, cfg, fi, regdom)
			})
		default:
			d.notApplied(s, k, f, "")
		}
		return nil
	})
}

func (d doc) wlan(s *Spec, n *yaml.Node, at field, regdom string) error {
	w := &WiFi{Country: regdom}
	var aps *yaml.Node
	err := d.fields(n, at, nil, func(key string, f field, k, v *yaml.Node) error {
		switch key {
		case "regulatory-domain":
			c, err := d.nonEmpty(v, f)
			if err != nil {
				return err
			}
			c = strings.ToUpper(c)
			if m := checkCountry(c); m != "" {
				return d.errAt(v, f, m)
			}
			w.Country = c
		case "access-points":
			aps = v
		case "dhcp4", "dhcp6", "optional":
			if key != "optional" && !(v.Tag == "!!bool" && v.Value == "true") {
				d.notApplied(s, k, f, "wlan0 uses DHCP")
			}
		default:
			d.notApplied(s, k, f, "wlan0 uses DHCP")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if aps == nil {
		return d.errAt(n, at+".access-points", "missing: no network to join")
	}
	i := 0
	err = d.fields(aps, at+".access-points", nil, func(_ string, _ field, k, v *yaml.Node) error {
		// An SSID is named by its place in the list, never by itself.
		f := (at + ".access-points").at(i)
		i++
		ssid, err := d.ssidKey(k, f)
		if err != nil {
			return err
		}
		nw, ok, err := d.accessPoint(s, v, f, ssid)
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
		return d.errAt(n, at+".regulatory-domain", "missing (and no cfg80211.ieee80211_regdom= in cmdline.txt): the radio needs its country, e.g. regulatory-domain: \"FR\"")
	}
	if s.WiFi != nil {
		return d.errAt(n, at, "wlan0 given twice")
	}
	s.WiFi = w
	return nil
}

// ssidKey reads an access point's SSID. Imager writes each octet of a
// non-ASCII SSID as \xHH in a double-quoted key, which YAML reads as the
// code point U+00HH: such a key is turned back into those octets.
func (d doc) ssidKey(k *yaml.Node, f field) ([]byte, error) {
	if k.Kind != yaml.ScalarNode || k.Value == "" {
		return nil, d.errAt(k, f, "an SSID must be a non-empty string")
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
				return nil, d.errAt(k, f, "an SSID mixes \\x escapes and characters beyond U+00FF: write it either as \\xHH octets or as plain text")
			}
			out = append(out, byte(r))
		}
		return out, nil
	}
	return []byte(k.Value), nil
}

// accessPoint reads one netplan access point; ok is false for one pibake
// cannot join (listed as not applied).
func (d doc) accessPoint(s *Spec, n *yaml.Node, at field, ssid []byte) (Network, bool, error) {
	nw := Network{SSID: ssid, File: d.file}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		nw.Open = true
		return nw, true, nil
	}
	var password string
	var passwordNode *yaml.Node
	keyMgmt, otherAuth := "", field("")
	err := d.fields(n, at, nil, func(key string, f field, k, v *yaml.Node) error {
		var err error
		switch key {
		case "password":
			password, err = d.nonEmpty(v, f)
			passwordNode = v
		case "hidden":
			nw.Hidden, err = d.boolean(v, f)
		case "auth":
			err = d.fields(v, f, nil, func(key string, fa field, _, av *yaml.Node) error {
				var e error
				switch key {
				case "key-management":
					keyMgmt, e = d.nonEmpty(av, fa)
				case "password":
					password, e = d.nonEmpty(av, fa)
					passwordNode = av
				default:
					otherAuth = fa
				}
				return e
			})
		default:
			d.notApplied(s, k, f, "")
		}
		return err
	})
	if err != nil {
		return nw, false, err
	}
	if otherAuth != "" {
		d.notApplied(s, n, otherAuth, "pibake joins WPA-PSK and open networks only")
		return nw, false, nil
	}
	switch keyMgmt {
	case "none":
		if password != "" {
			return nw, false, d.errAt(n, at, "key-management none with a password: give one or the other")
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
			return nw, false, d.errAt(passwordNode, at+".password", "want 8 to 63 printable ASCII characters or 64 hex digits (WPA-PSK)")
		}
	default:
		d.notApplied(s, n, at.dot("auth").dot("key-management").dot(keyMgmt), "pibake joins WPA-PSK and open networks only")
		return nw, false, nil
	}
	return nw, true, nil
}
