package provision

import (
	"context"
	"os"
	"strings"
	"testing"
)

// imagerUserData has the shape Raspberry Pi Imager 2.x writes for
// cloudinit-rpi (src/customization_generator.cpp, generateCloudInitUserData):
// hostname with avahi and apt settings, timezone, keyboard, the singular
// user: with a quoted hash and keys, ssh_pwauth, rpi: interfaces and runcmd.
const imagerUserData = `#cloud-config
manage_resolv_conf: false

hostname: kitchen-pi
manage_etc_hosts: true
packages:
- avahi-daemon
apt:
  preserve_sources_list: true
  conf: |
    Acquire {
      Check-Date "false";
    };
timezone: Europe/Paris
keyboard:
  model: pc105
  layout: "fr"
user:
  name: pi
  shell: /bin/bash
  lock_passwd: false
  passwd: "HASH"
  ssh_authorized_keys:
    - "KEY"
  sudo: null

ssh_pwauth: true
rpi:
  interfaces:
    i2c: true
    serial: true

runcmd:
  - [ systemctl, enable, --now, ssh ]
  - [ sh, -c, "printf '%s\n' 'CONNECT-TOKEN' > /home/pi/.config/com.raspberrypi.connect/deploy.key" ]
`

// imagerNetwork is generateCloudInitNetworkConfig's shape: eth0 DHCP, one
// access point with the PSK Imager derives, a non-ASCII SSID written as
// \xHH octets.
const imagerNetwork = `network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      dhcp6: true
      optional: true
  wifis:
    wlan0:
      dhcp4: true
      regulatory-domain: "FR"
      access-points:
        "Caf\xc3\xa9 \"wifi\"":
          hidden: true
          password: "b0a4b3f1e1b6e5a8c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4"
      optional: true
`

func imager(t testing.TB) CloudInit {
	return CloudInit{
		UserData:      []byte(strings.NewReplacer("KEY", sshKey(t, 2), "HASH", hashY).Replace(imagerUserData)),
		NetworkConfig: []byte(imagerNetwork),
		MetaData:      []byte("instance-id: rpi-imager-1767225600000\n"),
		Cmdline:       []byte("console=serial0,115200 root=PARTUUID=x ds=nocloud;i=rpi-imager-1767225600000 cfg80211.ieee80211_regdom=FR\n"),
	}
}

func TestCloudInitImager(t *testing.T) {
	s, err := ParseCloudInit(imager(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Hostname != "kitchen-pi" || s.TimeZone != "Europe/Paris" || s.SSHPasswordAuth == nil || !*s.SSHPasswordAuth {
		t.Errorf("%+v", s)
	}
	if len(s.Users) != 1 || s.Users[0].Name != "pi" || s.Users[0].PasswordHash != hashY || s.Users[0].Lock || len(s.Users[0].Keys) != 1 {
		t.Errorf("users %+v", s.Users)
	}
	n := s.WiFi.Networks[0]
	if s.WiFi.Country != "FR" || string(n.SSID) != "Café \"wifi\"" || !n.Hidden || n.PSK == "" {
		t.Errorf("wifi %+v %q", s.WiFi, n.SSID)
	}
	got := strings.Join(s.NotApplied, "\n")
	for _, want := range []string{"user-data: apt", "user-data: keyboard", "user-data: packages", "user-data: rpi", "user-data: runcmd", "user-data: user.shell", "user-data: user.sudo"} {
		if !strings.Contains(got, want) {
			t.Errorf("not applied lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "CONNECT-TOKEN") {
		t.Error("a value reached the not-applied list")
	}
	t.Logf("not applied:\n%s", got)
}

func TestCloudInitApply(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	root := target(t)
	s, err := ParseCloudInit(imager(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(context.Background(), root, s, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(t, root, "etc/shadow"); !strings.Contains(got, "pi:"+hashY+":") {
		t.Errorf("shadow %q", got)
	}
	if got := read(t, root, WPAPath); !strings.Contains(got, "ssid=436166c3a920227769666922\n\tscan_ssid=1\n") {
		t.Errorf("wpa %q", got)
	}
}

func TestCloudInitRules(t *testing.T) {
	key := sshKey(t, 3)
	for _, c := range []struct {
		name string
		ci   CloudInit
		want string // "" = accepted
	}{
		{"script", CloudInit{UserData: []byte("#!/bin/sh\nrm -rf /\n")}, "user-data:1: a script"},
		{"no header", CloudInit{UserData: []byte("hostname: a\n")}, "does not start with #cloud-config"},
		{"malformed", CloudInit{UserData: []byte("#cloud-config\nhostname: [\n")}, "user-data:2: malformed YAML"},
		{"malformed network", CloudInit{UserData: []byte("#cloud-config\nhostname: a\n"), NetworkConfig: []byte("network:\n  version: 2\n  wifis: {\n")}, "network-config"},
		{"plaintext", CloudInit{UserData: []byte("#cloud-config\nuser:\n  name: pi\n  plain_text_passwd: hunter2\n")}, "user-data:4: user.plain_text_passwd: a plaintext password"},
		{"passwd not a hash", CloudInit{UserData: []byte("#cloud-config\nusers:\n  - default\n  - name: pi\n    passwd: hunter2\n")}, "user-data:5: users.1.passwd: not a yescrypt"},
		{"bad key", CloudInit{UserData: []byte("#cloud-config\nuser:\n  name: pi\n  ssh_authorized_keys: [nonsense]\n")}, "user.ssh_authorized_keys.0"},
		{"wrong type", CloudInit{UserData: []byte("#cloud-config\nssh_pwauth: [x]\n")}, "user-data:2: ssh_pwauth: want true or false"},
		{"version 1", CloudInit{NetworkConfig: []byte("version: 1\nconfig: []\n")}, "network-config:1: version: want 2"},
		{"short password", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        home:\n          password: short\n")}, "network-config:8: network.wifis.wlan0.access-points.0.password: want 8 to 63"},
		{"no country", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      access-points:\n        home:\n          password: longenough\n")}, "regulatory-domain: missing"},
		{"country from cmdline", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      access-points:\n        home:\n          password: longenough\n"), Cmdline: []byte("quiet cfg80211.ieee80211_regdom=de\n")}, ""},
		{"open network", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        cafe:\n          auth:\n            key-management: none\n")}, ""},
		{"eap is not applied", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        corp:\n          auth:\n            key-management: eap\n            method: peap\n")}, ""},
		{"keys only", CloudInit{UserData: []byte("#cloud-config\nuser:\n  name: pi\n  lock_passwd: true\n  ssh_authorized_keys:\n    - \"" + key + "\"\n")}, ""},
		{"write_files is not applied", CloudInit{UserData: []byte("#cloud-config\nwrite_files:\n  - path: /etc/sudoers.d/x\n    content: 'pi ALL=(ALL) NOPASSWD:ALL'\nhostname: b\n")}, ""},
		{"meta-data hostname", CloudInit{MetaData: []byte("instance-id: x\nlocal-hostname: from-meta\n")}, ""},
		{"meta-data malformed", CloudInit{MetaData: []byte("instance-id: [\n")}, "meta-data:1: malformed YAML"},
	} {
		s, err := ParseCloudInit(c.ci)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && err == nil:
			t.Errorf("%s: accepted: %+v", c.name, s)
		case c.want != "" && !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: %v\n  want %q", c.name, err, c.want)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the message carries the secret: %v", c.name, err)
		}
		if err == nil {
			t.Logf("%s: hostname %q wifi %v not applied %q", c.name, s.Hostname, s.WiFi != nil, s.NotApplied)
		}
	}
}
