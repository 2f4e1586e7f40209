package provision

import (
	"encoding/base64"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FileName is pibake's provisioning file in the root of bootsel.
const FileName = "pibake-provision.yaml"

var modeRe = regexp.MustCompile(`^0?[0-7]{3}$`)

// Validate checks pibake-provision.yaml as the device will, without the
// device: what needs the image (users and owners that exist, the zone in
// its tzdata, the channels its agent allows) is checked on first boot.
// pibake flash --provision and pibake provision check use it.
func Validate(data []byte) error {
	_, err := Parse(FileName, data)
	return err
}

// Parse reads pibake-provision.yaml strictly (see docs/provisioning.md);
// file names it in errors. It checks what needs no target system. An
// error names the file, the line and the field, never a key or a value
// of the file (say.go).
func Parse(file string, data []byte) (*Spec, error) {
	d := doc{file: file, src: data}
	top, err := d.load(data)
	if err != nil {
		return nil, err
	}
	if top == nil {
		return nil, fail(file, 1, "", "the file sets nothing: give at least one of hostname, wifi, users, timezone, files, updater, fleet (see docs/provisioning.md)")
	}
	s := &Spec{Sources: []string{file}}
	err = d.fields(top, "", topKeys, func(key string, f field, k, v *yaml.Node) error {
		return d.topField(s, key, f, v)
	})
	if err != nil {
		return nil, err
	}
	return s, s.Validate()
}

// topField reads one top-level key of the file into s.
func (d doc) topField(s *Spec, key string, f field, v *yaml.Node) error {
	var err error
	switch key {
	case "version":
		if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Value != "1" {
			return d.errAt(v, f, "want 1 (the only version of this format)")
		}
	case "hostname":
		s.Hostname, err = d.checked(v, f, checkHostname)
	case "wifi":
		s.WiFi, err = d.wifi(v)
	case "users":
		var items []*yaml.Node
		if items, err = d.seq(v, f); err != nil {
			return err
		}
		for i, it := range items {
			u, err := d.user(it, f.at(i))
			if err != nil {
				return err
			}
			s.Users = append(s.Users, u)
		}
	case "ssh_password_auth":
		var b bool
		b, err = d.boolean(v, f)
		s.SSHPasswordAuth = &b
	case "timezone":
		s.TimeZone, err = d.checked(v, f, checkTimeZone)
	case "files":
		var items []*yaml.Node
		if items, err = d.seq(v, f); err != nil {
			return err
		}
		for i, it := range items {
			fl, err := d.file1(it, f.at(i))
			if err != nil {
				return err
			}
			s.Files = append(s.Files, fl)
		}
	case "updater":
		s.Updater, err = d.updater(v)
	case "fleet":
		s.Fleet, err = d.fleet(v)
	}
	return err
}

// checked is a non-empty string that check accepts.
func (d doc) checked(v *yaml.Node, f field, check func(string) msg) (string, error) {
	s, err := d.nonEmpty(v, f)
	if err != nil {
		return "", err
	}
	if m := check(s); m != "" {
		return "", d.errAt(v, f, m)
	}
	return s, nil
}

func (d doc) wifi(n *yaml.Node) (*WiFi, error) {
	w := &WiFi{}
	var sawCountry bool
	err := d.fields(n, "wifi", wifiKeys, func(key string, f field, k, v *yaml.Node) error {
		switch key {
		case "country":
			c, err := d.checked(v, f, checkCountry)
			if err != nil {
				return err
			}
			w.Country, sawCountry = c, true
		case "networks":
			items, err := d.seq(v, f)
			if err != nil {
				return err
			}
			if len(items) == 0 {
				return d.errAt(v, f, "empty: give at least one network, or leave wifi out")
			}
			for i, it := range items {
				nw, err := d.network(it, f.at(i))
				if err != nil {
					return err
				}
				w.Networks = append(w.Networks, nw)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sawCountry {
		return nil, d.errAt(n, "wifi.country", "missing: the radio needs its regulatory domain (e.g. country: FR)")
	}
	if len(w.Networks) == 0 {
		return nil, d.errAt(n, "wifi.networks", "missing: give at least one network (ssid and passphrase)")
	}
	return w, nil
}

func (d doc) network(n *yaml.Node, at field) (Network, error) {
	nw := Network{Line: n.Line, File: d.file}
	var ssid, ssidHex bool
	err := d.fields(n, at, networkKeys, func(key string, f field, k, v *yaml.Node) error {
		var err error
		switch key {
		case "ssid":
			var s string
			s, err = d.nonEmpty(v, f)
			nw.SSID, ssid = []byte(s), true
		case "ssid_hex":
			var s string
			if s, err = d.nonEmpty(v, f); err == nil {
				if nw.SSID, err = decodeHex(s); err != nil {
					return d.errAt(v, f, "want the SSID's octets as hex digits (2 per octet)")
				}
				ssidHex = true
			}
		case "passphrase":
			if nw.Passphrase, err = d.nonEmpty(v, f); err == nil && !passphraseOK(nw.Passphrase) {
				return d.errAt(v, f, "want 8 to 63 printable ASCII characters (WPA); or give psk: the 64 hex digits wpa_passphrase prints")
			}
		case "psk":
			if nw.PSK, err = d.nonEmpty(v, f); err == nil && !hex64.MatchString(nw.PSK) {
				return d.errAt(v, f, "want exactly 64 hex digits (wpa_passphrase SSID prints them); a passphrase goes in the passphrase field")
			}
		case "open":
			nw.Open, err = d.boolean(v, f)
		case "hidden":
			nw.Hidden, err = d.boolean(v, f)
		}
		return err
	})
	if err != nil {
		return nw, err
	}
	switch {
	case ssid == ssidHex:
		return nw, d.errAt(n, at, "want exactly one of ssid (the name) or ssid_hex (its octets in hex)")
	case len(nw.SSID) > 32:
		return nw, d.errAt(n, at+".ssid", "longer than 32 octets, the most an SSID has")
	}
	if m := checkNetwork(nw); m != "" {
		return nw, d.errAt(n, at, m)
	}
	return nw, nil
}

func (d doc) user(n *yaml.Node, at field) (User, error) {
	u := User{Line: n.Line, File: d.file}
	err := d.fields(n, at, userKeys, func(key string, f field, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			u.Name, err = d.checked(v, f, checkUserName)
		case "ssh_keys":
			u.Keys, err = d.sshKeys(v, f, false)
		case "password_hash":
			u.PasswordHash, err = d.checked(v, f, checkHash)
		}
		return err
	})
	if err == nil && u.Name == "" {
		err = d.errAt(n, at+".name", "missing: which user of the image")
	}
	if err == nil && len(u.Keys) == 0 && u.PasswordHash == "" {
		err = d.errAt(n, at, "sets nothing: give ssh_keys or password_hash")
	}
	return u, err
}

// sshKeys reads a list of OpenSSH public key lines, trimmed of blanks
// at both ends if trim.
func (d doc) sshKeys(v *yaml.Node, f field, trim bool) ([]string, error) {
	keys, err := d.strings(v, f)
	if err != nil {
		return nil, err
	}
	for i, key := range keys {
		if trim {
			keys[i] = strings.TrimSpace(key)
		}
		if m := checkKey(keys[i]); m != "" {
			return nil, d.errAt(v.Content[i], f.at(i), m)
		}
	}
	return keys, nil
}

func checkUserName(s string) msg {
	if !userName.MatchString(s) {
		return "not a user name (lower-case letters, digits, '_' and '-')"
	}
	return ""
}

func (d doc) file1(n *yaml.Node, at field) (File, error) {
	fl := File{Line: n.Line, File: d.file, Mode: 0o644, Owner: "root:root"}
	var content, b64 bool
	err := d.fields(n, at, fileKeys, func(key string, f field, k, v *yaml.Node) error {
		switch key {
		case "path":
			p, err := d.nonEmpty(v, f)
			if err != nil {
				return err
			}
			c, m := checkDataPath(p)
			if m != "" {
				return d.errAt(v, f, m)
			}
			fl.Path = c
		case "mode":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
				return d.errAt(v, f, "put the mode in quotes, as in mode: \"0640\" (YAML reads a bare 0640 as a number)")
			}
			m, err := d.nonEmpty(v, f)
			if err != nil {
				return err
			}
			if !modeRe.MatchString(m) {
				return d.errAt(v, f, "want permission bits in octal, such as \"0640\" (setuid, setgid and sticky are refused)")
			}
			x, _ := strconv.ParseUint(m, 8, 32)
			fl.Mode = os.FileMode(x)
		case "owner":
			o, err := d.nonEmpty(v, f)
			if err != nil {
				return err
			}
			un, gn, ok := strings.Cut(o, ":")
			if !ok || !userName.MatchString(un) || !userName.MatchString(gn) {
				return d.errAt(v, f, "want user:group, names of the image's accounts (e.g. root:root, pi:pi)")
			}
			fl.Owner = o
		case "content":
			s, err := d.str(v, f)
			if err != nil {
				return err
			}
			fl.Data, content = []byte(s), true
		case "base64":
			s, err := d.str(v, f)
			if err != nil {
				return err
			}
			data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
			if err != nil {
				return d.errAt(v, f, "not base64 (standard alphabet, with padding)")
			}
			fl.Data, b64 = data, true
		}
		return nil
	})
	if err != nil {
		return fl, err
	}
	switch {
	case fl.Path == "":
		return fl, d.errAt(n, at+".path", "missing: where under /data")
	case content == b64:
		return fl, d.errAt(n, at, "want exactly one of content (text) or base64")
	}
	return fl, nil
}

func (d doc) updater(n *yaml.Node) (*Updater, error) {
	u := &Updater{Line: n.Line, File: d.file}
	err := d.fields(n, "updater", updaterKeys, func(key string, f field, k, v *yaml.Node) error {
		var err error
		switch key {
		case "server":
			u.Server, err = d.nonEmpty(v, f)
		case "channel":
			u.Channel, err = d.nonEmpty(v, f)
		case "poll":
			var s string
			if s, err = d.nonEmpty(v, f); err == nil {
				if u.Poll, err = time.ParseDuration(s); err != nil || u.Poll < time.Minute {
					return d.errAt(v, f, "want a duration of at least a minute, such as 30m or 6h")
				}
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if u.Server == "" && u.Channel == "" && u.Poll == 0 {
		return nil, d.errAt(n, "updater", "sets nothing: give server, channel or poll")
	}
	if _, m := u.override(); m != "" {
		return nil, d.errAt(n, "updater", m)
	}
	return u, nil
}

func decodeHex(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)/2)
	if len(s)%2 != 0 {
		return nil, errors.New("odd length")
	}
	for i := 0; i < len(s); i += 2 {
		b, err := strconv.ParseUint(s[i:i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		out = append(out, byte(b))
	}
	return out, nil
}
