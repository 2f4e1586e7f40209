package provision

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pibake/pibake/internal/yamlerr"
)

// ErrInvalid is wrapped by every error about the content of a
// provisioning file. Each is a *yamlerr.Error whose message never carries
// a secret value (passphrase, hash, file content): it is written to the
// journal and to pibake-provision.error.txt on bootsel.
var ErrInvalid = yamlerr.ErrInvalid

// Spec is what a device is provisioned with, whichever file it came from.
type Spec struct {
	// Sources are the files the spec was read from, for messages.
	Sources  []string
	Hostname string
	// KeepHosts leaves /etc/hosts alone (cloud-init manage_etc_hosts: false).
	KeepHosts bool
	WiFi      *WiFi
	Users     []User
	// SSHPasswordAuth, when set, turns sshd's password login on or off.
	SSHPasswordAuth *bool
	TimeZone        string
	Files           []File
	Updater         *Updater
	Fleet           *Fleet
	// NotApplied lists settings of the input that pibake understood but
	// does not apply (cloud-init's runcmd, packages, ...), by name only.
	NotApplied []string
}

// WiFi is wpa_supplicant's configuration for wlan0.
type WiFi struct {
	Country  string // ISO 3166-1 alpha-2, upper case
	Networks []Network
}

// Network is one network block. Exactly one of Passphrase, PSK and Open.
type Network struct {
	SSID       []byte // 1..32 octets
	Passphrase string // 8..63 printable ASCII characters
	PSK        string // 64 hex digits (the PBKDF2 of the passphrase)
	Open       bool
	Hidden     bool
	Line       int
	File       string
}

// User is what provisioning sets for an account of the image.
type User struct {
	Name string
	Keys []string
	// PasswordHash is a crypt(3) hash ($y$, $6$ or $5$), "" to leave the
	// password as it is.
	PasswordHash string
	// Lock locks password login (cloud-init lock_passwd: true).
	Lock bool
	Line int
	File string
}

// File is one file to place under /data.
type File struct {
	Path  string // relative to /data, cleaned
	Mode  os.FileMode
	Owner string // user:group, names of the target's accounts
	Data  []byte
	Line  int
	File  string
}

// Updater is the update agent's override (/data/pibake/updater.yaml).
type Updater struct {
	Server  string
	Channel string
	Poll    time.Duration
	Line    int
	File    string
}

var (
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	country   = regexp.MustCompile(`^[A-Z]{2}$`)
	tzName    = regexp.MustCompile(`^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$`)
	cryptHash = []*regexp.Regexp{
		regexp.MustCompile(`^\$y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]*\$[./0-9A-Za-z]{43}$`),
		regexp.MustCompile(`^\$6\$(rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$`),
		regexp.MustCompile(`^\$5\$(rounds=[0-9]{1,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43}$`),
	}
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	hex64    = regexp.MustCompile(`^[0-9A-Fa-f]{64}$`)
)

// checkHostname: one or more RFC 1123 labels, at most 64 characters (the
// kernel's limit). Like every check here it says what is wrong ("" when
// nothing is), never the value.
func checkHostname(h string) msg {
	if h == "" || len(h) > 64 {
		return "want 1 to 64 characters"
	}
	for _, l := range strings.Split(h, ".") {
		if !hostLabel.MatchString(l) {
			return "not a valid host name: letters, digits and '-' (not first or last), labels separated by '.'"
		}
	}
	return ""
}

func checkCountry(c string) msg {
	if !country.MatchString(c) {
		return "not a two-letter country code (ISO 3166-1, e.g. FR, US, GB): the radio's regulatory domain needs it"
	}
	return ""
}

// checkTimeZone checks a zone name's syntax (the target root's zoneinfo is
// checked by Apply).
func checkTimeZone(tz string) msg {
	if len(tz) > 128 || !tzName.MatchString(tz) {
		return "not a time zone name such as Europe/Paris or UTC"
	}
	return ""
}

// checkHash accepts the crypt(3) formats Debian's libcrypt reads and
// recommends: yescrypt ($y$), SHA-512 ($6$) and SHA-256 ($5$). The message
// never repeats the value: it may be a plaintext password.
func checkHash(h string) msg {
	for _, re := range cryptHash {
		if re.MatchString(h) {
			return ""
		}
	}
	return "not a yescrypt ($y$), SHA-512 ($6$) or SHA-256 ($5$) crypt hash (a plaintext password is never accepted): make one with `mkpasswd -m yescrypt` (Debian's whois package) or `openssl passwd -6`"
}

var keyTypes = map[string]bool{
	"ssh-ed25519": true, "ssh-rsa": true, "ecdsa-sha2-nistp256": true, "ecdsa-sha2-nistp384": true,
	"ecdsa-sha2-nistp521": true, "sk-ssh-ed25519@openssh.com": true, "sk-ecdsa-sha2-nistp256@openssh.com": true,
}

// checkKey accepts "type base64 [comment]" with no options: an option such
// as command="..." would run a program.
func checkKey(k string) msg {
	if strings.ContainsAny(k, "\r\n\x00") {
		return "an SSH key is one line"
	}
	f := strings.Fields(k)
	if len(f) < 2 {
		return "want an OpenSSH public key line: TYPE BASE64 [COMMENT], as in ~/.ssh/id_ed25519.pub"
	}
	if !keyTypes[f[0]] {
		return "unknown key type: want one of ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com (options such as command= are refused)"
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil || len(blob) < 4 {
		return "the key data is not base64"
	}
	n := int(blob[0])<<24 | int(blob[1])<<16 | int(blob[2])<<8 | int(blob[3])
	if n != len(f[0]) || len(blob) < 4+n || string(blob[4:4+n]) != f[0] {
		return "the key data is of another type than the line's first word (copied from the wrong line?)"
	}
	return ""
}

// checkNetwork checks one Wi-Fi network block.
func checkNetwork(n Network) msg {
	switch {
	case len(n.SSID) == 0 || len(n.SSID) > 32:
		return "ssid: want 1 to 32 octets"
	case boolInt(n.Passphrase != "")+boolInt(n.PSK != "")+boolInt(n.Open) != 1:
		return "want exactly one of passphrase (8 to 63 characters), psk (64 hex digits) or open: true"
	case n.Passphrase != "" && !passphraseOK(n.Passphrase):
		return "passphrase: want 8 to 63 printable ASCII characters (WPA); or give psk: the 64 hex digits wpa_passphrase prints"
	case n.PSK != "" && !hex64.MatchString(n.PSK):
		return "psk: want exactly 64 hex digits (wpa_passphrase SSID prints them); a passphrase goes in the passphrase field"
	}
	return ""
}

func passphraseOK(p string) bool {
	if len(p) < 8 || len(p) > 63 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkDataPath cleans a path relative to /data and refuses what leaves
// it or touches pibake's own state: the overlays of /etc and /var, the
// update agent's state and the container stores live there, and a file
// placed in them could change what the device runs.
func checkDataPath(p string) (string, msg) {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) || strings.Contains(p, "\\") {
		return "", "want a path relative to /data, such as app/config.json"
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", "'..' is refused: the path must stay under /data"
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", "want a file under /data, not /data itself"
	}
	top, _, _ := strings.Cut(c, "/")
	if m, ok := systemDirs[top]; ok {
		return "", m
	}
	if !utf8.ValidString(c) || len(c) > 1024 {
		return "", "the path must be UTF-8, at most 1024 bytes"
	}
	return c, ""
}

// systemDirs are the folders of /data that belong to the system.
var systemDirs = map[string]msg{
	"pibake":     "/data/pibake belongs to the system (pibake's state and overlays): place files elsewhere under /data",
	"containers": "/data/containers belongs to the system (a container store): place files elsewhere under /data",
	"docker":     "/data/docker belongs to the system (a container store): place files elsewhere under /data",
	"lost+found": "/data/lost+found belongs to the system (e2fsck's): place files elsewhere under /data",
}

// Validate checks everything that does not need the target system; Apply
// checks the rest (users and owners exist, zoneinfo, the image's
// updater configuration).
func (s *Spec) Validate() error {
	src := strings.Join(s.Sources, ", ")
	if s.Hostname != "" {
		if m := checkHostname(s.Hostname); m != "" {
			return fail(src, 0, "hostname", m)
		}
	}
	if s.WiFi != nil {
		if m := checkCountry(s.WiFi.Country); m != "" {
			return fail(src, 0, "wifi.country", m)
		}
		for i, n := range s.WiFi.Networks {
			if m := checkNetwork(n); m != "" {
				return fail(n.File, n.Line, field("wifi.networks").at(i), m)
			}
		}
	}
	if err := s.validateUsers(); err != nil {
		return err
	}
	if s.TimeZone != "" {
		if m := checkTimeZone(s.TimeZone); m != "" {
			return fail(src, 0, "timezone", m)
		}
	}
	paths := map[string]bool{}
	for i, f := range s.Files {
		at := field("files").at(i)
		c, m := checkDataPath(f.Path)
		switch {
		case m != "":
			return fail(f.File, f.Line, at+".path", m)
		case paths[c]:
			return fail(f.File, f.Line, at+".path", "the same path as an earlier entry: give each file once")
		case f.Mode&^0o777 != 0:
			return fail(f.File, f.Line, at+".mode", "permission bits only (0644, 0600, ...): setuid, setgid and sticky bits are refused")
		}
		paths[c] = true
		if _, _, ok := strings.Cut(f.Owner, ":"); !ok {
			return fail(f.File, f.Line, at+".owner", "want user:group")
		}
	}
	return nil
}

// validateUsers checks Spec.Users: names, keys and hashes, each user once.
func (s *Spec) validateUsers() error {
	seen := map[string]bool{}
	for i, u := range s.Users {
		at := field("users").at(i)
		if !userName.MatchString(u.Name) {
			return fail(u.File, u.Line, at+".name", "not a user name")
		}
		if seen[u.Name] {
			return fail(u.File, u.Line, at, "the same user as an earlier entry: merge the entries")
		}
		seen[u.Name] = true
		for j, k := range u.Keys {
			if m := checkKey(k); m != "" {
				return fail(u.File, u.Line, at.dot("ssh_keys").at(j), m)
			}
		}
		if u.PasswordHash != "" {
			if m := checkHash(u.PasswordHash); m != "" {
				return fail(u.File, u.Line, at.dot("password_hash"), m)
			}
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ssidField renders an SSID for wpa_supplicant.conf: a quoted string when
// every octet is printable ASCII other than '"' and '\' (wpa_supplicant
// takes the text up to the last quote as it is, with no escapes, and its
// comment stripping pairs quotes), else the octets in hex, unquoted.
func ssidField(ssid []byte) string {
	for _, b := range ssid {
		if b < 0x20 || b > 0x7e || b == '"' || b == '\\' {
			return hex.EncodeToString(ssid)
		}
	}
	return `"` + string(ssid) + `"`
}
