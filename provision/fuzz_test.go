package provision

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParse: pibake-provision.yaml parses into a spec that validates, or
// is refused with an Error; never a panic, and a refusal never repeats a
// key, a value, a tag or an anchor of the input (leaks: no run of
// leakWindow characters of one that is not the program's own text), nor
// any of the markers planted in their place (plant).
func FuzzParse(f *testing.F) {
	f.Add([]byte(good(f)))
	f.Add([]byte("hostname: a\nwifi:\n  country: FR\n  networks:\n    - {ssid: x, passphrase: fuzzsecret1}\n"))
	f.Add([]byte("files:\n  - {path: a/b, mode: \"0600\", owner: pi:pi, base64: AAEC}\n"))
	f.Add([]byte("updater:\n  server: https://x/\n  channel: beta\n  poll: 1h\n"))
	f.Add([]byte("fleet:\n  user: box-1\n  password: pw\n"))
	f.Add([]byte("hostname: &a x\ntimezone: *a\n"))
	f.Add([]byte("wifi: [\n"))
	f.Add([]byte("{0fuzzsecret1}\n"))
	f.Add([]byte("wifi:\n  country: FR\n  networks:\n    - ssid: x\n      passphrase: !fuzzsecret1\n"))
	f.Add([]byte("users:\n  - name: pi\n    password_hash: !!fuzzsecret1\n"))
	f.Add([]byte("hostname: -fuzzsecret1\ntimezone: ../fuzzsecret1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if marked, markers, ok := plant(data); ok {
			if _, err := Parse(FileName, marked); err != nil {
				if m := planted(err.Error(), markers); len(m) > 0 {
					t.Errorf("the error repeats the markers %q planted in\n%s\n%v", m, marked, err)
				}
			}
		}
		s, err := Parse(FileName, data)
		if err != nil {
			if l := leaks(t, err.Error(), data); len(l) > 0 {
				t.Errorf("the error repeats %q of the input: %v", l, err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Errorf("Parse accepted what Validate refuses: %v", err)
		}
		if s.Updater != nil {
			if _, m := s.Updater.override(); m != "" {
				t.Errorf("an accepted updater section does not render: %v", m)
			}
		}
	})
}

// FuzzCloudInit: Imager's three files parse or are refused, never panic;
// neither a refusal nor the list of settings not applied repeats a key or
// a value of the input, nor a marker planted in their place (as in
// FuzzParse).
func FuzzCloudInit(f *testing.F) {
	ci := imager(f)
	f.Add(ci.UserData, ci.NetworkConfig, ci.MetaData)
	f.Add([]byte("#cloud-config\nusers:\n  - default\n  - name: pi\n    lock_passwd: true\n"), []byte("version: 2\nwifis:\n  wlan0:\n    regulatory-domain: gb\n    access-points:\n      \"\\xff\\x00\": {}\n"), []byte("{}"))
	f.Add([]byte("#!/bin/sh\n"), []byte("network: {version: 1}\n"), []byte("instance-id: [\n"))
	f.Add([]byte("#cloud-config\nfuzzsecret1: x\nuser:\n  name: pi\n  passwd: !fuzzsecret1\n"), []byte("network:\n  version: 2\n  wifis:\n    fuzzsecret1: {}\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        fuzzsecret1:\n          password: short\n"), []byte("fuzzsecret1: x\n"))
	f.Fuzz(func(t *testing.T, user, network, meta []byte) {
		plantedCloudInit(t, user, network, meta)
		s, err := ParseCloudInit(CloudInit{UserData: user, NetworkConfig: network, MetaData: meta})
		if err != nil {
			if l := leaks(t, err.Error(), user, network, meta); len(l) > 0 {
				t.Errorf("the error repeats %q of the input: %v", l, err)
			}
			return
		}
		if l := leaks(t, strings.Join(s.NotApplied, "\n"), user, network, meta); len(l) > 0 {
			t.Errorf("not applied repeats %q of the input: %q", l, s.NotApplied)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("accepted what Validate refuses: %v", err)
		}
	})
}

// plantedCloudInit parses the three files with markers planted in each
// (plant; user-data keeps its #cloud-config line): neither the refusal nor
// the settings not applied may name one.
func plantedCloudInit(t *testing.T, user, network, meta []byte) {
	var markers []string
	in := func(data []byte) []byte {
		out, m, ok := plant(data)
		if !ok {
			return data
		}
		markers = append(markers, m...)
		return out
	}
	ci := CloudInit{UserData: in(user), NetworkConfig: in(network), MetaData: in(meta)}
	if bytes.HasPrefix(user, []byte("#cloud-config\n")) && !bytes.Equal(ci.UserData, user) {
		ci.UserData = append([]byte("#cloud-config\n"), ci.UserData...)
	}
	said := ""
	if s, err := ParseCloudInit(ci); err != nil {
		said = err.Error()
	} else {
		said = strings.Join(s.NotApplied, "\n")
	}
	if m := planted(said, markers); len(m) > 0 {
		t.Errorf("%q repeats the markers %q planted in\n%s\n%s\n%s", said, m, ci.UserData, ci.NetworkConfig, ci.MetaData)
	}
}

// FuzzShadow: the rewrite changes only the named user's hash field.
func FuzzShadow(f *testing.F) {
	f.Add([]byte("root:*:1:0:99999:7:::\npi:*:1:0:99999:7:::\n"), "pi")
	f.Add([]byte("pi:*\n\npi2::\r\nx"), "pi")
	f.Fuzz(func(t *testing.T, old []byte, user string) {
		out, err := shadowWith(old, map[string]string{user: hash5})
		if err != nil {
			return
		}
		if len(out) != len(old)-len(shadowHashes(old)[user])+len(hash5) {
			t.Errorf("length %d from %d: more than the hash changed", len(out), len(old))
		}
	})
}
