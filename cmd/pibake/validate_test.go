package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validRepo makes a repository with one definition images/NAME.yaml of
// body (after a valid head) and a key, and returns the definition's path.
func validRepo(t *testing.T, dir, name, body string) string {
	t.Helper()
	for _, d := range []string{"images", "services", "overlays/base/etc/systemd/system", "keys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"services/hello.service":                            "[Unit]\n[Service]\nExecStart=/bin/true\n",
		"overlays/base/etc/systemd/system/extra.service":    "[Service]\nExecStart=/bin/true\n",
		"overlays/base/etc/containers/systemd/cache.volume": "[Volume]\n",
	}
	for f, data := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "fleet.pub")); err != nil {
		if _, _, err := runCmd("keygen", "--out", filepath.Join(dir, "keys"), "--name", "fleet"); err != nil {
			t.Fatal(err)
		}
	}
	head := "name: " + name + "\nversion: 1.0.0\n"
	if !strings.Contains(body, "boards:") {
		head += "boards: [qemu]\n"
	}
	if !strings.Contains(body, "debian:") {
		head += "debian:\n  packages: [systemd-sysv, openssh-server, podman]\n"
	}
	p := filepath.Join(dir, "images", name+".yaml")
	if err := os.WriteFile(p, []byte(head+body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const validUpdater = `services: [{name: hello}]
overlays: [{name: base}]
updater:
  server: https://updates.example.com/fleet
  keys: [keys/fleet.pub]
  health:
    units: [hello.service, extra.service, cache-volume.service, ssh.service, systemd-networkd.service, pibake-updater.service]
`

// TestValidateFinds: each case is a definition that loads today (and
// that validate passed at 7cca2ba) but that a build or a device refuses;
// validate now names the field, the line and what to do.
func TestValidateFinds(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"card", "partitions: {data: 3000GiB}\n", []string{"partitions.data: the image would be 3002.3 GiB, larger than the largest card a Pi reads"}},
		{"pi5", "boards: [pi5]\n", []string{`box.yaml:5: boards.0: board "pi5" needs a kernel trixie's main archive does not have: use the trixie-backports kernel: set debian.backports: true and ask for linux-image-arm64/trixie-backports`}},
		{"typo", strings.Replace(validUpdater, "[hello.service,", "[helo.service,", 1), []string{"updater.health.units.0: no service, container, overlay or package of this image provides the unit helo.service", "(did you mean hello.service?)"}},
		{"after", "containers: [{name: app, image: oci:x, after: [mosquito.service]}]\n", []string{"containers.0.after.0: no service, container, overlay or package of this image provides the unit mosquito.service"}},
		{"channel", validUpdater + "  channel: Stable\n", []string{`updater.channel: channel name "Stable": use 1 to 63 lower-case letters`}},
		{"channels", validUpdater + "  channels: [beta, \"a/b\"]\n", []string{`updater.channels.1: channel name "a/b"`}},
		{"group", "users: [{name: pi, groups: [adm, nosuchgroup]}, {name: ops, groups: [pi, _ssh, systemd-journal]}]\n", []string{`users.0.groups.1: group "nosuchgroup" is not a group of Debian's base system`}},
		{"podman", "containers: [{name: app, image: oci:x}]\ndebian:\n  packages: [systemd-sysv]\n", []string{"debian.packages: the containers run with podman, but debian.packages does not install podman"}},
		{"docker", "container_runtime: docker\ncontainers: [{name: app, image: oci:x}]\ndebian:\n  packages: [systemd-sysv, docker.io]\n", []string{"does not install docker-cli"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := validRepo(t, t.TempDir(), "box", c.body)
			out, _, err := runCmd("validate", p)
			if err == nil || exitCode(err) != 1 {
				t.Errorf("validate passed: %v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestValidateGood: the units, groups and channels the definition, its
// packages and pibake provide pass.
func TestValidateGood(t *testing.T) {
	p := validRepo(t, t.TempDir(), "box", validUpdater+"  channels: [beta, prod-eu]\nusers: [{name: pi, groups: [adm, systemd-journal]}, {name: ops, groups: [pi]}]\n")
	out, _, err := runCmd("validate", p)
	if err != nil || !strings.Contains(out, "box.yaml: ok (box 1.0.0, boards qemu, environments: none)") || !strings.Contains(out, "note: no lock file") {
		t.Errorf("%v\n%s", err, out)
	}
}

// TestValidateLock: a garbage lock and a lock made for other packages
// fail validate, as they fail the build.
func TestValidateLock(t *testing.T) {
	dir := t.TempDir()
	p := validRepo(t, dir, "box", "")
	lock := filepath.Join(dir, "images", "box.lock")
	os.WriteFile(lock, []byte("\x00\x01garbage{{"), 0o644)
	out, _, err := runCmd("validate", p)
	if err == nil || !strings.Contains(out, "box.lock: malformed lock file") {
		t.Errorf("garbage lock: %v\n%s", err, out)
	}
	demo, err := os.ReadFile("../../images/demo.lock")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(lock, demo, 0o644)
	out, _, err = runCmd("validate", p)
	if err == nil || !strings.Contains(out, "box.lock: lock file is stale: the definition's debian suite, archives (updates, security, backports), components, variant or packages changed") {
		t.Errorf("stale lock: %v\n%s", err, out)
	}
}

// TestValidateAllFiles: every file and every problem, not the first.
func TestValidateAllFiles(t *testing.T) {
	dir := t.TempDir()
	a := validRepo(t, dir, "a", "boards: [pi5]\nusers: [{name: pi, groups: [nosuchgroup]}]\n")
	b := validRepo(t, dir, "b", "hostnam: x\n")
	good := validRepo(t, dir, "good", "")
	out, _, err := runCmd("validate", a, b, good)
	if err == nil || err.Error() != "validate: 3 problems in 2 definitions of 3" {
		t.Errorf("error %v", err)
	}
	for _, w := range []string{"a.yaml:5: boards.0", "a.yaml:6: users.0.groups.0", "b.yaml:6: hostnam: unknown field", "good.yaml: ok"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	out, _, err = runCmd("validate", "--json", a, good)
	var got []validation
	if jerr := json.Unmarshal([]byte(out), &got); jerr != nil || err == nil || len(got) != 2 {
		t.Fatalf("--json: %v %v\n%s", err, jerr, out)
	}
	if got[0].OK || len(got[0].Problems) != 2 || got[0].Problems[0].Line != 5 || got[0].Problems[0].Field != "boards.0" || !got[1].OK || got[1].Lock != "missing" {
		t.Errorf("--json: %+v", got)
	}
}
