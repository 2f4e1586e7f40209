package provision

import (
	"bytes"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
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
	if s.Hostname == "" && metaHost != "" && !slices.Contains(s.NotApplied, "user-data: preserve_hostname") {
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
	err = d.fields(top, "", nil, func(key string, f field, k, v *yaml.Node) error {
		switch key {
		case "instance-id":
			_, err := d.str(v, f)
			return err
		case "local-hostname":
			var err error
			host, err = d.checked(v, f, checkHostname)
			return err
		}
		d.notApplied(s, k, f, "")
		return nil
	})
	return host, err
}

func parseUserData(s *Spec, data []byte) error {
	if ok, err := isCloudConfig(data); !ok || err != nil {
		return err
	}
	d := doc{file: UserData, src: data}
	top, err := d.load(data)
	if err != nil || top == nil {
		return err
	}
	var h userDataHost
	err = d.fields(top, "", nil, func(key string, f field, k, v *yaml.Node) error {
		return d.userDataField(s, &h, key, f, k, v)
	})
	if err != nil {
		return err
	}
	if h.host != "" {
		if h.preserve {
			d.notApplied(s, h.at, "hostname", "preserve_hostname: true")
		} else {
			s.Hostname = h.host
		}
	}
	return nil
}

// isCloudConfig tells whether user data is #cloud-config (false for empty
// user data) and refuses any other kind.
func isCloudConfig(data []byte) (bool, error) {
	first, _, _ := bytes.Cut(data, []byte("\n"))
	first = bytes.TrimRight(first, " \t\r")
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		return false, nil
	case bytes.HasPrefix(first, []byte("#!")):
		return false, fail(UserData, 1, "", "a script: pibake runs no commands from the boot partition (nothing was applied); use #cloud-config settings or pibake-provision.yaml")
	case !bytes.Equal(first, []byte("#cloud-config")):
		return false, fail(UserData, 1, "", "does not start with #cloud-config: only cloud-config user data is read (no MIME multipart, #include or scripts); nothing was applied")
	}
	return true, nil
}

// userDataHost is what user-data says of the host name: it applies once
// the whole file is read.
type userDataHost struct {
	host     string
	preserve bool
	at       *yaml.Node
}

// userDataField reads one top-level key of user-data; a key pibake does
// not apply is listed in s.NotApplied.
func (d doc) userDataField(s *Spec, h *userDataHost, key string, f field, k, v *yaml.Node) error {
	var err error
	switch key {
	case "hostname":
		h.host, err = d.checked(v, f, checkHostname)
		h.at = k
	case "preserve_hostname":
		h.preserve, err = d.boolean(v, f)
	case "manage_etc_hosts":
		if v.Kind == yaml.ScalarNode && v.Tag == "!!bool" {
			b, _ := d.boolean(v, f)
			s.KeepHosts = !b
			return nil
		}
		m, err := d.str(v, f)
		if err != nil || (m != "localhost" && m != "template") {
			return d.errAt(v, f, "want true, false, localhost or template")
		}
	case "timezone":
		s.TimeZone, err = d.checked(v, f, checkTimeZone)
	case "user":
		if v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
			return nil // a name alone sets nothing pibake applies
		}
		var u User
		if u, err = d.ciUser(s, v, f); err == nil {
			s.addUser(u)
		}
	case "users":
		err = d.ciUsers(s, v, f)
	case "ssh_pwauth":
		if v.Kind == yaml.ScalarNode && v.Tag == "!!str" && v.Value == "unchanged" {
			return nil
		}
		var b bool
		if b, err = d.boolean(v, f); err == nil {
			s.SSHPasswordAuth = &b
		}
	case "manage_resolv_conf":
		_, err = d.boolean(v, f) // pibake's image uses systemd-resolved: nothing to do
	default:
		d.notApplied(s, k, f, "")
	}
	return err
}

// ciUsers reads cloud-init's users: list; "default" and users given by
// name only set nothing pibake applies.
func (d doc) ciUsers(s *Spec, v *yaml.Node, f field) error {
	items, err := d.seq(v, f)
	if err != nil {
		return err
	}
	for i, it := range items {
		if it.Kind == yaml.ScalarNode && it.Tag == "!!str" {
			if it.Value != "default" {
				d.notApplied(s, it, f.at(i), "a user by name only: pibake creates no users")
			}
			continue
		}
		u, err := d.ciUser(s, it, f.at(i))
		if err != nil {
			return err
		}
		s.addUser(u)
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
func (d doc) ciUser(s *Spec, n *yaml.Node, at field) (User, error) {
	u := User{Line: n.Line, File: d.file, Lock: true}
	err := d.fields(n, at, nil, func(key string, f field, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			u.Name, err = d.checked(v, f, checkUserName)
		case "passwd", "hashed_passwd":
			u.PasswordHash, err = d.checked(v, f, checkHash)
		case "plain_text_passwd":
			return d.errAt(v, f, "a plaintext password is never applied (nothing was): give passwd: with a crypt hash (mkpasswd -m yescrypt)")
		case "lock_passwd":
			u.Lock, err = d.boolean(v, f)
		case "ssh_authorized_keys":
			var keys []string
			keys, err = d.sshKeys(v, f, true)
			u.Keys = append(u.Keys, keys...)
		default:
			// shell, groups, sudo, gecos, ...: the account is the image's.
			d.notApplied(s, k, f, "")
		}
		return err
	})
	if err == nil && u.Name == "" {
		err = d.errAt(n, at+".name", "missing: which user of the image")
	}
	return u, err
}
