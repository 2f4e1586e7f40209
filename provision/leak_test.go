package provision

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.yaml.in/yaml/v3"
)

// leakWindow is the length of the pieces of the input a message must not
// carry: any run of that many characters of a key, a value, a tag or an
// anchor of the input, unless the program's own text has it too (a field
// name, a word of a fixed message).
const leakWindow = 6

var (
	ownTextOnce sync.Once
	ownTextAll  string
)

// ownText is every string literal of the provisioning readers and of the
// shared YAML reader (non-test files): the only text a message may be
// made of, besides the file name and numbers.
func ownText(t testing.TB) string {
	ownTextOnce.Do(func() {
		var b strings.Builder
		for _, dir := range []string{".", "../internal/yamlerr"} {
			files, err := filepath.Glob(filepath.Join(dir, "*.go"))
			if err != nil {
				panic(err)
			}
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				src, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
				if err != nil {
					panic(err)
				}
				ast.Inspect(src, func(n ast.Node) bool {
					if l, ok := n.(*ast.BasicLit); ok && l.Kind == token.STRING {
						if s, err := strconv.Unquote(l.Value); err == nil {
							b.WriteString(s + "\x00")
						}
					}
					return true
				})
			}
		}
		ownTextAll = b.String()
	})
	return ownTextAll
}

// inputPieces are the texts of an input a message could repeat: every
// key, value, tag and anchor YAML reads in it (whatever the parse error),
// and every run of characters between blanks and YAML's punctuation.
func inputPieces(data []byte) []string {
	var out []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		out = append(out, n.Value, n.Anchor)
		if !strings.HasPrefix(n.Tag, "!!") {
			out = append(out, n.Tag)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	for i := 0; i < 4; i++ {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			break
		}
		walk(&n)
	}
	out = append(out, strings.FieldsFunc(string(data), func(r rune) bool {
		return r <= ' ' || strings.ContainsRune(":,[]{}#&*!|>'\"%@`?-=\\", r)
	})...)
	return out
}

// position is what a message may say of a place: "line 12", "file:12:".
var position = regexp.MustCompile(`(line |:)[0-9]+`)

// fieldPath matches a word, or words joined by dots: what may be a
// field's path, as in wifi.networks.0.ssid.
var fieldPath = regexp.MustCompile(`[A-Za-z0-9_?-]+(\.[A-Za-z0-9_?-]+)*`)

// ownPaths replaces in msg each of the formats' words, and each field
// path made of them, of list indices and of '?' (the path of an unknown
// key), by '§': they are the program's own, but joined to each other or
// to a list's ", " they are in none of its literals.
func ownPaths(msg string) string {
	return fieldPath.ReplaceAllStringFunc(msg, func(p string) string {
		for _, w := range strings.Split(p, ".") {
			w = strings.TrimSuffix(w, "?") // "?" or "did you mean hostname?"
			if _, err := strconv.Atoi(w); err != nil && !words[w] && w != "" {
				return p
			}
		}
		return "§"
	})
}

// leaks lists the pieces of the inputs that msg repeats: windows of
// leakWindow characters of an input's piece that are not the program's
// own text.
func leaks(t testing.TB, msg string, inputs ...[]byte) []string {
	own := ownText(t)
	msg = ownPaths(position.ReplaceAllString(msg, "$1#"))
	var out []string
	seen := map[string]bool{}
	for _, in := range inputs {
		for _, p := range inputPieces(in) {
			r := []rune(p)
			for i := 0; i+leakWindow <= len(r); i++ {
				w := string(r[i : i+leakWindow])
				if seen[w] || !strings.Contains(msg, w) || strings.Contains(own, w) {
					continue
				}
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	return out
}

// TestMessagesCarryNoValue: refusals that once repeated a key or a value
// of the input (a value starting with '!' is a YAML tag; an unknown key;
// a host name, a country, an SSID) now say where, never what.
func TestMessagesCarryNoValue(t *testing.T) {
	const s = "Hunter2Secret"
	wifi := func(line string) string {
		return "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      " + line + "\n"
	}
	for _, c := range []struct{ name, body string }{
		{"tag passphrase", wifi("passphrase: !" + s)},
		{"tag psk", wifi("psk: !" + s)},
		{"secondary tag", wifi("passphrase: !!" + s)},
		{"tag hash", "users:\n  - name: pi\n    password_hash: !" + s + "\n"},
		{"tag on a list", wifi("passphrase: !" + s + " [a]")},
		{"key only", "{0fuzzsecret1}\n"},
		{"unknown key", "{" + s + ": 1}\n"},
		{"unknown nested key", wifi(s + ": x")},
		{"anchor", "hostname: &" + s + " a\ntimezone: *" + s + "\n"},
		{"unknown anchor", "hostname: *" + s + "\n"},
		{"host name", "hostname: -" + s + "\n"},
		{"country", "wifi:\n  country: " + s + "\n  networks: [{ssid: x, open: true}]\n"},
		{"time zone", "timezone: ../" + s + "\n"},
		{"user name", "users:\n  - {name: " + s + ", password_hash: x}\n"},
		{"key type", "users:\n  - name: pi\n    ssh_keys: ['" + s + " AAAA']\n"},
		{"long ssid", "wifi:\n  country: FR\n  networks:\n    - {ssid: " + strings.Repeat(s, 3) + ", open: true}\n"},
		{"data path", "files:\n  - {path: pibake/" + s + ", content: x}\n"},
		{"malformed quote", "hostname: \"" + s + "\n"},
		{"short quote", "a: *'" + s[:3] + "'\n"},
		{"version", "version: !" + s + " 1\n"},
	} {
		_, err := Parse(FileName, []byte(c.body))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if l := leaks(t, err.Error(), []byte(c.body)); len(l) > 0 {
			t.Errorf("%s: the message repeats %q of the input: %v", c.name, l, err)
		}
	}
	for _, c := range []struct {
		name string
		ci   CloudInit
	}{
		{"tag passwd", CloudInit{UserData: []byte("#cloud-config\nuser:\n  name: pi\n  passwd: !" + s + "\n")}},
		{"tag password", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        home:\n          password: !" + s + "\n")}},
		{"ssid in the field", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        " + s + ":\n          password: short\n")}},
		{"interface", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    " + s + ":\n      access-points: [x]\n  ethernets:\n    eth0: 3\n")}},
		{"user name", CloudInit{UserData: []byte("#cloud-config\nusers:\n  - name: " + s + "\n")}},
		{"meta host", CloudInit{MetaData: []byte("local-hostname: _" + s + "\n")}},
		{"regdom", CloudInit{NetworkConfig: []byte("network:\n  version: 2\n  wifis:\n    wlan0:\n      regulatory-domain: " + s + "\n      access-points:\n        home: {password: longenough}\n")}},
		{"unknown key, then an error", CloudInit{UserData: []byte("#cloud-config\n" + s + ":\n  - x\nssh_pwauth: [x]\n")}},
	} {
		_, err := ParseCloudInit(c.ci)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if l := leaks(t, err.Error(), c.ci.UserData, c.ci.NetworkConfig, c.ci.MetaData); len(l) > 0 {
			t.Errorf("%s: the message repeats %q of the input: %v", c.name, l, err)
		}
	}
}

// TestNotAppliedCarriesNoKey: the settings pibake does not apply are
// logged by their known names; a key it does not know is named by its
// line only.
func TestNotAppliedCarriesNoKey(t *testing.T) {
	const s = "Hunter2Secret"
	ci := CloudInit{
		UserData:      []byte("#cloud-config\nruncmd: [x]\n" + s + ": 1\nuser:\n  name: pi\n  " + s + "x: 2\n"),
		NetworkConfig: []byte("network:\n  version: 2\n  ethernets:\n    " + s + "0: {dhcp4: true}\n  wifis:\n    " + s + "1: {}\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        home:\n          auth: {key-management: " + s + "2}\n"),
		MetaData:      []byte("instance-id: x\n" + s + "3: y\n"),
	}
	spec, err := ParseCloudInit(ci)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(spec.NotApplied, "\n")
	if !strings.Contains(got, "user-data: runcmd") {
		t.Errorf("a known key is not named:\n%s", got)
	}
	if l := leaks(t, got, ci.UserData, ci.NetworkConfig, ci.MetaData); len(l) > 0 {
		t.Errorf("not applied repeats %q of the input:\n%s", l, got)
	}
}

// TestRunSaysNoValue: what Run writes where people read it (its error,
// the journal, pibake-provision.error.txt on bootsel) repeats no key and
// no value of the files, whether they are refused when parsed, refused
// against the image, fail while being committed or are applied.
func TestRunSaysNoValue(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	const s = "Hunter2Secret"
	const l = "hunter2secret"
	type setup func(root string)
	for _, c := range []struct {
		name  string
		files map[string]string
		setup setup
		fails bool
	}{
		{name: "tag passphrase", files: map[string]string{FileName: "wifi:\n  country: FR\n  networks:\n    - ssid: x\n      passphrase: !" + s + "\n"}, fails: true},
		{name: "unknown key", files: map[string]string{FileName: "{0" + s + "1}\n"}, fails: true},
		{name: "no such user", files: map[string]string{FileName: "users:\n  - name: " + l + "\n    password_hash: \"" + hash5 + "\"\n"}, fails: true},
		{name: "unknown owner", files: map[string]string{FileName: "files:\n  - {path: a, owner: " + l + ":" + l + "g, content: x}\n"}, fails: true},
		{name: "unknown group", files: map[string]string{FileName: "files:\n  - {path: a, owner: pi:" + l + ", content: x}\n"}, fails: true},
		{name: "unknown zone", files: map[string]string{FileName: "timezone: Mars/" + s + "\n"}, fails: true},
		{name: "channel", files: map[string]string{FileName: "updater:\n  channel: " + s + "\n"}, fails: true},
		{name: "fleet", files: map[string]string{FileName: "fleet:\n  user: " + s + "/x\n  password: " + s + "\n"}, fails: true},
		{name: "fleet applied", files: map[string]string{FileName: "fleet:\n  user: box-9\n  password: " + s + "\n"}},
		{name: "path through a symlink", files: map[string]string{FileName: "files:\n  - {path: " + s + "/x, content: x}\n"}, fails: true,
			setup: func(root string) { os.Symlink("/etc", filepath.Join(root, "data", s)) }},
		{name: "path is a folder", files: map[string]string{FileName: "files:\n  - {path: " + s + ", content: x}\n"}, fails: true,
			setup: func(root string) { os.MkdirAll(filepath.Join(root, "data", s), 0o755) }},
		{name: "path through a file", files: map[string]string{FileName: "files:\n  - {path: " + s + "/x, content: x}\n"}, fails: true,
			setup: func(root string) { os.WriteFile(filepath.Join(root, "data", s), nil, 0o644) }},
		{name: "commit fails", files: map[string]string{FileName: "files:\n  - {path: app/" + s + ", content: " + s + "}\n"}, fails: true,
			setup: func(string) {
				renameFile = func(string, string) error { return &os.LinkError{Op: "rename", Old: s, New: s, Err: syscall.EIO} }
			}},
		{name: "applied", files: map[string]string{FileName: "hostname: box-9\nfiles:\n  - {path: app/" + s + ", content: " + s + "}\n"}},
		{name: "cloud-init", files: map[string]string{
			UserData:      "#cloud-config\n" + s + ": 1\nuser:\n  name: pi\n  " + s + "x: 2\n",
			NetworkConfig: "network:\n  version: 2\n  wifis:\n    " + s + "1: {}\n    wlan0:\n      regulatory-domain: GB\n      access-points:\n        " + s + "2:\n          password: !" + s + "\n",
			MetaData:      "instance-id: x\n" + s + "3: y\n",
		}, fails: true},
		{name: "cloud-init applied", files: map[string]string{
			UserData: "#cloud-config\n" + s + ": 1\nruncmd: [" + s + "]\n",
			MetaData: s + "3: y\n",
		}},
	} {
		boot, root := t.TempDir(), target(t)
		var inputs [][]byte
		for name, body := range c.files {
			os.WriteFile(filepath.Join(boot, name), []byte(body), 0o600)
			inputs = append(inputs, []byte(body))
		}
		if c.setup != nil {
			c.setup(root)
		}
		var journal bytes.Buffer
		log := slog.New(slog.NewTextHandler(&journal, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}}))
		_, err := Run(context.Background(), boot, root, log)
		renameFile = os.Rename
		if (err != nil) != c.fails {
			t.Errorf("%s: %v", c.name, err)
		}
		note, _ := os.ReadFile(filepath.Join(boot, ErrorFile))
		if c.fails && len(note) == 0 {
			t.Errorf("%s: no %s", c.name, ErrorFile)
		}
		said := journal.String() + "\n" + string(note)
		if err != nil {
			said += "\n" + err.Error()
		}
		said = strings.ReplaceAll(said, root, "ROOT")
		if l := leaks(t, said, inputs...); len(l) > 0 {
			t.Errorf("%s: repeats %q of the input:\n%s", c.name, l, said)
		}
	}
}
