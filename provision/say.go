package provision

import (
	"errors"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/pibake/pibake/internal/editdist"

	"github.com/pibake/pibake/internal/yamlerr"
)

// What a refusal may say. Provisioning's messages go to the journal, the
// console and pibake-provision.error.txt on the card, and the files they
// are about hold passphrases, password hashes and tokens: a message is
// made of the file's name, a line number, a field path of known words and
// a fixed text, never of a key or a value read from the input. Two types
// keep it so, and TestSayOnlyHere checks that only this file converts to
// them from anything but a constant:
//
//   - msg is a message's fixed text. An untyped string constant becomes
//     one by itself; a string variable does not.
//   - field is a path of the formats' own words and list indices. A key
//     read from the input joins one only through [field.dot], which keeps
//     a known word and writes any other key as "?" (the line says where).

// msg is the fixed text of a refusal; "" is no refusal. It is no error
// type, so that an empty one cannot pass for a non-nil error.
type msg string

// field is a field's path, as in wifi.networks.0.passphrase.
type field string

// dot is the path to key under f: key itself when it is one of the
// formats' words, "?" otherwise.
func (f field) dot(key string) field {
	if !words[key] {
		key = "?"
	}
	if f == "" {
		return field(key)
	}
	return f + "." + field(key)
}

// at is the path to the i-th item of the list at f.
func (f field) at(i int) field {
	return f + "." + field(strconv.Itoa(i))
}

// fail is the one place a provisioning refusal is made.
func fail(file string, line int, f field, m msg) *yamlerr.Error {
	return &yamlerr.Error{File: file, Line: line, Field: string(f), Msg: string(m)}
}

// unknownField says a key is not one of known (the formats' own lists),
// and which of them it may be a typo for: only known words are named.
func unknownField(key string, known []string) msg {
	words := knownWords(known)
	m := msg("unknown field")
	if w := closest(key, words); w != "" {
		m += ": did you mean " + msg(w) + "?"
	}
	return m + " (known: " + msg(strings.Join(words, ", ")) + ")"
}

// closest is the word of list within 2 edits of key (the first such), or
// "".
func closest(key string, list []string) string {
	if len(key) > 64 {
		return ""
	}
	for _, w := range list {
		if editdist.Levenshtein(key, w) <= 2 {
			return w
		}
	}
	return ""
}

// fromImage is a message naming what the target image has (its login
// users, the channels its agent allows): facts of the image, not of the
// provisioning file.
func fromImage(before msg, names []string, after msg) msg {
	return before + msg(strings.Join(names, ", ")) + after
}

// notApplied is how a setting pibake understood but does not apply is
// listed in Spec.NotApplied (and logged): its file, its path and its
// line, and why.
func notApplied(file string, f field, line int, why msg) string {
	s := file + ": " + string(f) + " (line " + strconv.Itoa(line)
	if why != "" {
		s += ": " + string(why)
	}
	return s + ")"
}

// osErr is an error of the operating system without the path it names
// (a file under /data is named by the provisioning file).
func osErr(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return &fs.PathError{Op: pe.Op, Path: "(file)", Err: pe.Err}
	case errors.As(err, &le):
		return &fs.PathError{Op: le.Op, Path: "(file)", Err: le.Err}
	}
	return err
}

// knownWords is the sorted words of list that are formats' words.
func knownWords(list []string) []string {
	var out []string
	for _, w := range list {
		if words[w] {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// The keys of pibake-provision.yaml, section by section.
var (
	topKeys     = []string{"version", "hostname", "wifi", "users", "ssh_password_auth", "timezone", "files", "updater", "fleet"}
	wifiKeys    = []string{"country", "networks"}
	networkKeys = []string{"ssid", "ssid_hex", "passphrase", "psk", "open", "hidden"}
	userKeys    = []string{"name", "ssh_keys", "password_hash"}
	fileKeys    = []string{"path", "mode", "owner", "content", "base64"}
	updaterKeys = []string{"server", "channel", "poll"}
	fleetKeys   = []string{"user", "password"}
)

// cloudInitWords are the keys of cloud-init's user-data and meta-data and
// of netplan's network-config that pibake names: those it reads, and
// those it is known not to apply (cloud-init's modules, a user's other
// fields, netplan's other settings, usual interface names).
var cloudInitWords = []string{
	// user-data, top level
	"hostname", "preserve_hostname", "manage_etc_hosts", "timezone", "user", "users", "ssh_pwauth",
	"manage_resolv_conf", "fqdn", "prefer_fqdn_over_hostname", "runcmd", "bootcmd", "packages",
	"package_update", "package_upgrade", "package_reboot_if_required", "apt", "apt_pipelining", "write_files",
	"rpi", "keyboard", "locale", "chpasswd", "ntp", "ssh", "ssh_keys", "ssh_deletekeys", "ssh_genkeytypes",
	"ssh_publish_hostkeys", "ssh_quiet_keygen", "disable_root", "disable_root_opts", "groups", "mounts",
	"mount_default_fields", "swap", "final_message", "power_state", "phone_home", "growpart", "resize_rootfs",
	"ca_certs", "snap", "random_seed", "resolv_conf", "rsyslog", "wireguard", "yum_repos", "zypper",
	"ubuntu_pro", "lxd", "puppet", "chef", "salt_minion", "ansible", "landscape", "mcollective",
	"byobu_by_default", "device_aliases", "disk_setup", "fs_setup", "merge_how", "output", "reporting",
	"system_info", "datasource", "vendor_data", "cloud_init_modules", "cloud_config_modules",
	"cloud_final_modules", "create_hostname_file", "network", "instance-id", "local-hostname", "dsmode",
	"public-keys", "network-interfaces", "enable_ssh", "ssh_import_id", "ssh_authorized_keys",
	// a user's fields
	"name", "passwd", "hashed_passwd", "plain_text_passwd", "lock_passwd", "gecos", "shell", "sudo",
	"primary_group", "homedir", "system", "no_create_home", "no_user_group", "no_log_init", "inactive",
	"expiredate", "selinux_user", "uid", "create_groups", "doas", "snapuser", "ssh_redirect_user",
	// netplan
	"version", "renderer", "ethernets", "wifis", "bonds", "bridges", "vlans", "tunnels", "modems",
	"dhcp4", "dhcp6", "optional", "regulatory-domain", "access-points", "addresses", "gateway4",
	"gateway6", "routes", "routing-policy", "nameservers", "match", "set-name", "mtu", "macaddress",
	"wakeonlan", "link-local", "accept-ra", "critical", "dhcp-identifier", "dhcp4-overrides",
	"dhcp6-overrides", "ipv6-privacy", "password", "hidden", "auth", "key-management", "mode", "bssid",
	"band", "channel", "method", "identity", "anonymous-identity", "ca-certificate", "client-certificate",
	"client-key", "client-key-password", "phase2-auth", "eth0", "eth1", "end0", "end1", "usb0", "lo",
	"wlan0", "wlan1",
	// netplan's key-management values
	"none", "psk", "eap", "sae", "802.1x", "eap-sha256", "eap-suite-b-192", "psk-sha256",
}

// words is every key a message may name.
var words = func() map[string]bool {
	m := map[string]bool{}
	for _, list := range [][]string{topKeys, wifiKeys, networkKeys, userKeys, fileKeys, updaterKeys, fleetKeys, cloudInitWords} {
		for _, w := range list {
			m[w] = true
		}
	}
	return m
}()
