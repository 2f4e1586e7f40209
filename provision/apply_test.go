package provision

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// target makes a root with what the image has: accounts, hosts, tzdata,
// the agent's configuration.
func target(t testing.TB) string {
	root := t.TempDir()
	files := map[string]string{
		"etc/passwd":                      "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\npi:x:1000:1000::/home/pi:/bin/bash\n",
		"etc/group":                       "root:x:0:\nadm:x:4:pi\nshadow:x:42:\npi:x:1000:\n",
		"etc/shadow":                      "root:*:20000:0:99999:7:::\nsshd:!:20000::::::\npi:*:20000:0:99999:7:::\n",
		"etc/hosts":                       "127.0.0.1\tlocalhost\n127.0.1.1\tdemo\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
		"etc/hostname":                    "demo\n",
		"usr/share/zoneinfo/Europe/Paris": "TZif2...",
		"usr/share/zoneinfo/UTC":          "TZif2...",
		"etc/pibake/updater.yaml":         "server: http://10.0.2.100:8080\nchannel: stable\nchannels: [beta]\nboard: qemu\nkeys: [RWSkey]\n",
	}
	for p, body := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "etc/shadow"), 0o640)
	os.Chown(filepath.Join(root, "etc/shadow"), 0, 42)
	os.MkdirAll(filepath.Join(root, "data"), 0o755)
	return root
}

func read(t testing.TB, root, p string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func owner(t testing.TB, root, p string) (os.FileMode, int, int) {
	t.Helper()
	st, err := os.Lstat(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return st.Mode(), int(sys.Uid), int(sys.Gid)
}

func TestApply(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	root := target(t)
	s, err := Parse(FileName, []byte(good(t)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Apply(context.Background(), root, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Hostname || !res.WiFi || !res.SSHConfig {
		t.Errorf("result %+v", res)
	}
	if got := read(t, root, "etc/hostname"); got != "box-17\n" {
		t.Errorf("hostname %q", got)
	}
	if got := read(t, root, "etc/hosts"); got != "127.0.0.1\tlocalhost\n127.0.1.1\tbox-17\n::1\t\tlocalhost ip6-localhost ip6-loopback\n" {
		t.Errorf("hosts %q", got)
	}
	if m, u, g := owner(t, root, WPAPath); m != 0o600 || u != 0 || g != 0 {
		t.Errorf("wpa file %v %d:%d", m, u, g)
	}
	if got := read(t, root, "etc/shadow"); got != "root:*:20000:0:99999:7:::\nsshd:!:20000::::::\npi:"+hash6+":20000:0:99999:7:::\n" {
		t.Errorf("shadow %q", got)
	}
	if m, u, g := owner(t, root, "etc/shadow"); m != 0o640 || u != 0 || g != 42 {
		t.Errorf("shadow %v %d:%d", m, u, g)
	}
	if got := read(t, root, KeysDir+"/pi"); got != sshKey(t, 1)+"\n" {
		t.Errorf("keys %q", got)
	}
	// StrictModes: the file and every folder above it root-owned, not
	// writable by group or others.
	for _, p := range []string{KeysDir + "/pi", KeysDir, "/etc/ssh"} {
		if m, u, _ := owner(t, root, p); u != 0 || m.Perm()&0o022 != 0 {
			t.Errorf("%s: %v uid %d", p, m, u)
		}
	}
	if got := read(t, root, SSHDropIn); !strings.Contains(got, "PasswordAuthentication no\n") {
		t.Errorf("sshd drop-in %q", got)
	}
	if l, err := os.Readlink(filepath.Join(root, LocaltimePath)); err != nil || l != "../usr/share/zoneinfo/Europe/Paris" {
		t.Errorf("localtime %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(root, LocaltimePath)); err != nil {
		t.Errorf("localtime does not resolve in the root: %v", err)
	}
	if got := read(t, root, TimezonePath); got != "Europe/Paris\n" {
		t.Errorf("timezone %q", got)
	}
	if m, u, g := owner(t, root, "data/app/config.json"); m != 0o640 || u != 1000 || g != 1000 {
		t.Errorf("data file %v %d:%d", m, u, g)
	}
	if got := read(t, root, UpdaterOverride); !strings.Contains(got, "channel: beta\n") {
		t.Errorf("override %q", got)
	}
	left, _ := filepath.Glob(filepath.Join(root, "*/*.pibake-*"))
	left2, _ := filepath.Glob(filepath.Join(root, "*/*/*.pibake-*"))
	if len(left)+len(left2) > 0 {
		t.Errorf("leftovers %v %v", left, left2)
	}
	// Again: the same result.
	if _, err := Apply(context.Background(), root, s, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(t, root, "etc/shadow"); strings.Count(got, hash6) != 1 {
		t.Errorf("shadow after a second apply %q", got)
	}
}

// TestApplyFailsWhole: a rename failing part-way through the commit puts
// back every file already replaced, removes what was new, and leaves no
// stage behind.
func TestApplyFailsWhole(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	s, err := Parse(FileName, []byte(good(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, failAt := range []int{1, 3, 6, 9} {
		root := target(t)
		before := snapshot(t, root)
		calls := 0
		renameFile = func(a, b string) error {
			calls++
			if calls == failAt {
				return errors.New("injected failure")
			}
			return os.Rename(a, b)
		}
		_, err := Apply(context.Background(), root, s, nil)
		renameFile = os.Rename
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("fail at %d: %v", failAt, err)
		}
		if after := snapshot(t, root); after != before {
			t.Errorf("fail at rename %d: the root changed:\nbefore\n%s\nafter\n%s", failAt, before, after)
		}
	}
}

// snapshot lists every path of a root with its content or link.
func snapshot(t testing.TB, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, st os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel + " " + st.Mode().String())
		if st.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		} else if st.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			b.WriteString(" -> " + l)
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestApplyRefusesAgainstTarget(t *testing.T) {
	for _, c := range []struct{ name, body, want string }{
		{"no such user", "users:\n  - name: bob\n    password_hash: \"" + hash5 + "\"\n", "users.0" /* line */},
		{"unknown owner", "files:\n  - {path: a, owner: bob:pi, content: x}\n", ":2: files.0.owner: the user does not exist in this image (it has root, pi)"},
		{"unknown zone", "timezone: Mars/Olympus\n", "not a zone of this image's tzdata"},
		{"channel not allowed", "updater:\n  channel: attacker\n", ":2: updater.channel: not one this image allows (stable, beta)"},
	} {
		root := target(t)
		before := snapshot(t, root)
		s, err := Parse(FileName, []byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, err = Apply(context.Background(), root, s, nil)
		if err == nil {
			t.Errorf("%s: applied", c.name)
			continue
		}
		if c.name == "no such user" {
			c.want = "no such user in this image (it has root, pi)"
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if snapshot(t, root) != before {
			t.Errorf("%s: the root changed", c.name)
		}
	}
	root := target(t)
	os.RemoveAll(filepath.Join(root, "usr/share/zoneinfo"))
	s, _ := Parse(FileName, []byte("timezone: Europe/Paris\n"))
	if _, err := Apply(context.Background(), root, s, nil); err == nil || !strings.Contains(err.Error(), "add tzdata") {
		t.Errorf("no tzdata: %v", err)
	}
}
