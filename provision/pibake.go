package provision

import (
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/internal/yamlerr"
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
// file names it in errors. It checks what needs no target system.
func Parse(file string, data []byte) (*Spec, error) {
	d := doc{file: file, src: data}
	top, err := d.load(data)
	if err != nil {
		return nil, err
	}
	if top == nil {
		return nil, &yamlerr.Error{File: file, Line: 1, Msg: "the file sets nothing: give at least one of hostname, wifi, users, timezone, files, updater (see docs/provisioning.md)"}
	}
	s := &Spec{Sources: []string{file}}
	known := []string{"version", "hostname", "wifi", "users", "ssh_password_auth", "timezone", "files", "updater"}
	err = d.fields(top, "", known, func(key string, k, v *yaml.Node) error {
		switch key {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Value != "1" {
				return d.errAt(v, key, "want 1 (the only version of this format)")
			}
		case "hostname":
			h, err := d.nonEmpty(v, key)
			if err != nil {
				return err
			}
			if err := checkHostname(h); err != nil {
				return d.errAt(v, key, "%v", err)
			}
			s.Hostname = h
		case "wifi":
			w, err := d.wifi(v)
			if err != nil {
				return err
			}
			s.WiFi = w
		case "users":
			items, err := d.seq(v, key)
			if err != nil {
				return err
			}
			for i, it := range items {
				u, err := d.user(it, "users."+strconv.Itoa(i))
				if err != nil {
					return err
				}
				s.Users = append(s.Users, u)
			}
		case "ssh_password_auth":
			b, err := d.boolean(v, key)
			if err != nil {
				return err
			}
			s.SSHPasswordAuth = &b
		case "timezone":
			tz, err := d.nonEmpty(v, key)
			if err != nil {
				return err
			}
			if err := checkTimeZone(tz); err != nil {
				return d.errAt(v, key, "%v", err)
			}
			s.TimeZone = tz
		case "files":
			items, err := d.seq(v, key)
			if err != nil {
				return err
			}
			for i, it := range items {
				f, err := d.file1(it, "files."+strconv.Itoa(i))
				if err != nil {
					return err
				}
				s.Files = append(s.Files, f)
			}
		case "updater":
			u, err := d.updater(v)
			if err != nil {
				return err
			}
			s.Updater = u
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, s.Validate()
}

func (d doc) wifi(n *yaml.Node) (*WiFi, error) {
	w := &WiFi{}
	var sawCountry bool
	err := d.fields(n, "wifi", []string{"country", "networks"}, func(key string, k, v *yaml.Node) error {
		switch key {
		case "country":
			c, err := d.nonEmpty(v, "wifi.country")
			if err != nil {
				return err
			}
			if err := checkCountry(c); err != nil {
				return d.errAt(v, "wifi.country", "%v", err)
			}
			w.Country, sawCountry = c, true
		case "networks":
			items, err := d.seq(v, "wifi.networks")
			if err != nil {
				return err
			}
			if len(items) == 0 {
				return d.errAt(v, "wifi.networks", "empty: give at least one network, or leave wifi out")
			}
			for i, it := range items {
				nw, err := d.network(it, "wifi.networks."+strconv.Itoa(i))
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

func (d doc) network(n *yaml.Node, field string) (Network, error) {
	nw := Network{Line: n.Line, File: d.file}
	var ssid, ssidHex bool
	err := d.fields(n, field, []string{"ssid", "ssid_hex", "passphrase", "psk", "open", "hidden"}, func(key string, k, v *yaml.Node) error {
		f := field + "." + key
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
		return nw, d.errAt(n, field, "want exactly one of ssid (the name) or ssid_hex (its octets in hex)")
	case len(nw.SSID) > 32:
		return nw, d.errAt(n, field+".ssid", "%d octets: an SSID has at most 32", len(nw.SSID))
	}
	if err := checkNetwork(nw); err != nil {
		return nw, d.errAt(n, field, "%v", err)
	}
	return nw, nil
}

func (d doc) user(n *yaml.Node, field string) (User, error) {
	u := User{Line: n.Line, File: d.file}
	err := d.fields(n, field, []string{"name", "ssh_keys", "password_hash"}, func(key string, k, v *yaml.Node) error {
		f := field + "." + key
		var err error
		switch key {
		case "name":
			if u.Name, err = d.nonEmpty(v, f); err == nil && !userName.MatchString(u.Name) {
				return d.errAt(v, f, "%q is not a user name", truncate(u.Name, 40))
			}
		case "ssh_keys":
			var keys []string
			if keys, err = d.strings(v, f); err != nil {
				return err
			}
			for i, key := range keys {
				if err := checkKey(key); err != nil {
					return d.errAt(v.Content[i], f+"."+strconv.Itoa(i), "%v", err)
				}
			}
			u.Keys = keys
		case "password_hash":
			if u.PasswordHash, err = d.nonEmpty(v, f); err == nil {
				if err := CheckPasswordHash(u.PasswordHash); err != nil {
					return d.errAt(v, f, "%v", err)
				}
			}
		}
		return err
	})
	if err == nil && u.Name == "" {
		err = d.errAt(n, field+".name", "missing: which user of the image")
	}
	if err == nil && len(u.Keys) == 0 && u.PasswordHash == "" {
		err = d.errAt(n, field, "sets nothing: give ssh_keys or password_hash")
	}
	return u, err
}

func (d doc) file1(n *yaml.Node, field string) (File, error) {
	f := File{Line: n.Line, File: d.file, Mode: 0o644, Owner: "root:root"}
	var content, b64 bool
	err := d.fields(n, field, []string{"path", "mode", "owner", "content", "base64"}, func(key string, k, v *yaml.Node) error {
		fl := field + "." + key
		switch key {
		case "path":
			p, err := d.nonEmpty(v, fl)
			if err != nil {
				return err
			}
			c, err := checkDataPath(p)
			if err != nil {
				return d.errAt(v, fl, "%v", err)
			}
			f.Path = c
		case "mode":
			if v.Kind == yaml.ScalarNode && v.Tag == "!!int" {
				return d.errAt(v, fl, "put the mode in quotes, as in mode: \"0640\" (YAML reads a bare 0640 as a number)")
			}
			m, err := d.nonEmpty(v, fl)
			if err != nil {
				return err
			}
			if !modeRe.MatchString(m) {
				return d.errAt(v, fl, "want permission bits in octal, such as \"0640\" (setuid, setgid and sticky are refused)")
			}
			x, _ := strconv.ParseUint(m, 8, 32)
			f.Mode = os.FileMode(x)
		case "owner":
			o, err := d.nonEmpty(v, fl)
			if err != nil {
				return err
			}
			un, gn, ok := strings.Cut(o, ":")
			if !ok || !userName.MatchString(un) || !userName.MatchString(gn) {
				return d.errAt(v, fl, "want user:group, names of the image's accounts (e.g. root:root, pi:pi)")
			}
			f.Owner = o
		case "content":
			s, err := d.str(v, fl)
			if err != nil {
				return err
			}
			f.Data, content = []byte(s), true
		case "base64":
			s, err := d.str(v, fl)
			if err != nil {
				return err
			}
			data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
			if err != nil {
				return d.errAt(v, fl, "not base64 (standard alphabet, with padding)")
			}
			f.Data, b64 = data, true
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	switch {
	case f.Path == "":
		return f, d.errAt(n, field+".path", "missing: where under /data")
	case content == b64:
		return f, d.errAt(n, field, "want exactly one of content (text) or base64")
	}
	return f, nil
}

func (d doc) updater(n *yaml.Node) (*Updater, error) {
	u := &Updater{Line: n.Line, File: d.file}
	err := d.fields(n, "updater", []string{"server", "channel", "poll"}, func(key string, k, v *yaml.Node) error {
		f := "updater." + key
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
	if _, err := u.override(); err != nil {
		return nil, d.errAt(n, "updater", "%v", err)
	}
	return u, nil
}

func decodeHex(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)/2)
	if len(s)%2 != 0 {
		return nil, fmt.Errorf("odd length")
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
