package imagedef

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckedInDefinitions loads every definition in images/ with every
// environment it declares.
func TestCheckedInDefinitions(t *testing.T) {
	files, err := filepath.Glob("../../images/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no image definitions found: %v", err)
	}
	testdata, _ := filepath.Glob("../testdata/*/images/*.yaml")
	files = append(files, testdata...)
	for _, f := range files {
		d, err := Load(f, Options{})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); d.Name != want {
			t.Errorf("%s: name %q, want the file name %q", f, d.Name, want)
		}
		for _, env := range d.EnvNames() {
			if _, err := Load(f, Options{Env: env}); err != nil {
				t.Errorf("%s --env %s: %v", f, env, err)
			}
		}
	}
}

func writeRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range []string{"overlays/base/etc/x.conf", "services/hello.service"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const good = `name: small
version: 1.0.0
boards: [qemu, pi4]
debian:
  packages: [systemd-sysv]
partitions:
  root: 512MiB
users:
  - name: pi
    ssh_keys: ["ssh-ed25519 AAAAC3Nza pi@x"]
overlays:
  - name: base
    files:
      - path: etc/x.conf
        mode: "0600"
services:
  - name: hello
environments:
  prod:
    hostname: small-prod
    partitions:
      data: 1GiB
    users: []
`

func TestDefaultsAndEnvMerge(t *testing.T) {
	root := writeRepo(t)
	d, err := Parse("small.yaml", []byte(good), root, "")
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "small" || d.Debian.Suite != DefaultSuite || d.Bootloader != "uboot" || d.Partitions.Root != 512*MiB || d.Partitions.Data != DefaultPartitions.Data {
		t.Errorf("defaults not applied: %+v", d)
	}
	if d.DefaultBoard() != "qemu" || len(d.Users) != 1 || d.Users[0].Shell != "/bin/bash" || d.Overlays[0].Owner != "root:root" {
		t.Errorf("unexpected: %+v", d)
	}
	p, err := Parse("small.yaml", []byte(good), root, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if p.Hostname != "small-prod" || p.Partitions.Data != GiB || p.Partitions.Root != 512*MiB || len(p.Users) != 0 || p.Env != "prod" {
		t.Errorf("prod override not merged: hostname %q data %s root %s users %d", p.Hostname, p.Partitions.Data, p.Partitions.Root, len(p.Users))
	}
}

func TestErrors(t *testing.T) {
	root := writeRepo(t)
	cases := []struct {
		name, yaml, env string
		want            []string // substrings of the error
	}{
		{"malformed", "name: [x\n", "", []string{"small.yaml:", "malformed YAML"}},
		{"unknown field", strings.Replace(good, "hostname: small-prod", "hostnme: small-prod", 1), "prod", []string{"small.yaml:20:", "environments.prod.hostnme", "unknown field"}},
		{"unknown top field", good + "colour: blue\n", "", []string{"small.yaml:24:", "colour: unknown field"}},
		{"nested unknown", strings.Replace(good, "    mode: \"0600\"", "    mod: \"0600\"", 1), "", []string{"small.yaml:15:", "overlays.0.files.0.mod"}},
		{"unknown board", strings.Replace(good, "[qemu, pi4]", "[qemu, pi9]", 1), "", []string{"small.yaml:3:", "boards.1", `unknown board "pi9"`}},
		{"missing overlay", strings.Replace(good, "- name: base", "- name: nope", 1), "", []string{"small.yaml:12:", "overlays.0.name", "does not exist"}},
		{"missing service", strings.Replace(good, "- name: hello", "- name: bye", 1), "", []string{"small.yaml:17:", "services.0.name", "bye.service"}},
		{"wrong type", strings.Replace(good, "root: 512MiB", "root: lots", 1), "", []string{"small.yaml:7", "invalid size"}},
		{"no env", good, "staging", []string{`no environment "staging"`, "prod"}},
		{"bad mode", strings.Replace(good, `"0600"`, `"0999"`, 1), "", []string{"small.yaml:15:", "mode"}},
		{"too small fat", strings.Replace(good, "root: 512MiB", "boot: 8MiB", 1), "", []string{"partitions.boot", "too small"}},
		{"tryboot pi3", strings.Replace(good, "[qemu, pi4]", "[pi3]\nbootloader: tryboot", 1), "", []string{"boards.0", "tryboot"}},
		{"scalar env", strings.Replace(good, "  prod:\n", "  staging: yes\n  prod:\n", 1), "staging", []string{"environments.staging", "must be a mapping"}},
		{"missing name", strings.Replace(good, "name: small\n", "", 1), "", []string{"name: required"}},
		{"unknown runtime", good + "container_runtime: rkt\n", "", []string{"small.yaml:24:", "container_runtime", `unknown container runtime "rkt"`, "podman, docker"}},
		{"bad address", good + "network:\n  addresses: [192.168.1.300/24]\n", "", []string{"small.yaml:25:", "network.addresses.0", "prefix length"}},
		{"no address", good + "network:\n  dhcp: false\n", "", []string{"small.yaml:25:", "network.dhcp", "no address"}},
		{"bad dns", good + "network:\n  dns: [one.one]\n", "", []string{"network.dns.0", "not an IP address"}},
		{"bad ntp", good + "network:\n  ntp: [\"pool ntp\"]\n", "", []string{"network.ntp.0", "host name"}},
		{"long wait", good + "network:\n  time_wait: 2h\n", "", []string{"network.time_wait", "0s..1h"}},
		{"wifi without firmware", strings.Replace(good, "debian:\n", "debian:\n  components: [main]\n", 1), "", []string{"network.wifi", "non-free-firmware"}},
		{"network package twice", strings.Replace(good, "[systemd-sysv]", "[systemd-sysv, wpasupplicant]", 1), "", []string{"debian.packages.1", "added by the network section"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("small.yaml", []byte(c.yaml), root, c.env)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"64MiB": 64 * MiB, "1GiB": GiB, "512K": 512 * KiB, "4096": 4096, "2G": 2 * GiB} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1MiB", "1.5GiB", "MiB", "1TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

const withContainers = `containers:
  - name: web
    build: {go: app}
    ports: ["8080:8080"]
    volumes: ["web-data:/data:U"]
    environment: {GREETING: hi}
    health:
      command: [/app, -check, "http://127.0.0.1:8080/healthz"]
      interval: 5s
    after: [redis]
  - service: redis
    environment: {EXTRA: "1"}
`

func TestContainers(t *testing.T) {
	root := writeRepo(t)
	os.MkdirAll(filepath.Join(root, "app"), 0o755)
	svc := "image: docker.io/library/redis:7.4\nvolumes: [\"redis-data:/data\"]\nenvironment: {MAXMEM: 64mb}\nhealth:\n  command: [redis-cli, ping]\n"
	os.WriteFile(filepath.Join(root, "services/redis.container.yaml"), []byte(svc), 0o644)
	d, err := Parse("small.yaml", []byte(good+withContainers), root, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Containers) != 2 {
		t.Fatalf("containers %+v", d.Containers)
	}
	r := d.Containers[1]
	if r.Name != "redis" || r.Image != "docker.io/library/redis:7.4" || r.Environment["MAXMEM"] != "64mb" || r.Environment["EXTRA"] != "1" || r.Health == nil {
		t.Errorf("service not merged: %+v", r)
	}
	if d.Containers[0].Health.Interval.Seconds() != 5 {
		t.Errorf("health interval %v", d.Containers[0].Health.Interval)
	}

	for _, c := range []struct {
		name, edit string
		want       []string
	}{
		{"no source", strings.Replace(withContainers, "    build: {go: app}\n", "", 1), []string{"containers.0", "say where the image comes from"}},
		{"both", strings.Replace(withContainers, "    build: {go: app}\n", "    build: {go: app}\n    image: x:1\n", 1), []string{"not both"}},
		{"bad port", strings.Replace(withContainers, `"8080:8080"`, `"80800:80"`, 1), []string{"containers.0.ports.0", "HOST:CONTAINER"}},
		{"bad volume", strings.Replace(withContainers, `web-data:/data:U`, `/host/../x:/data`, 1), []string{"containers.0.volumes.0", "clean and absolute"}},
		{"data partition", strings.Replace(withContainers, `web-data:/data:U`, `/data:/data`, 1), []string{"containers.0.volumes.0", "/data/pibake", "device's trust"}},
		{"pibake state", strings.Replace(withContainers, `web-data:/data:U`, `/data/pibake/overlay:/x:ro`, 1), []string{"containers.0.volumes.0", "/data/pibake"}},
		{"root", strings.Replace(withContainers, `web-data:/data:U`, `/:/host`, 1), []string{"containers.0.volumes.0", "device's trust"}},
		{"etc writable", strings.Replace(withContainers, `web-data:/data:U`, `/etc:/host-etc`, 1), []string{"containers.0.volumes.0", "/etc", "read-only"}},
		{"usr writable", strings.Replace(withContainers, `web-data:/data:U`, `/usr/lib/pibake:/x:rw`, 1), []string{"containers.0.volumes.0", "/usr"}},
		{"unknown after", strings.Replace(withContainers, "after: [redis]", "after: [nginx]", 1), []string{"containers.0.after.0", "nginx"}},
		{"missing go", strings.Replace(withContainers, "go: app", "go: nothere", 1), []string{"containers.0.build.go", "does not exist"}},
		{"unknown field", strings.Replace(withContainers, "    ports:", "    port:", 1), []string{"containers.0.port", "unknown field"}},
		{"missing service", strings.Replace(withContainers, "service: redis", "service: mosquitto", 1), []string{"mosquitto.container.yaml"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("small.yaml", []byte(good+c.edit), root, "")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	os.WriteFile(filepath.Join(root, "services/redis.container.yaml"), []byte(svc+"colour: red\n"), 0o644)
	if _, err := Parse("small.yaml", []byte(good+withContainers), root, ""); err == nil || !strings.Contains(err.Error(), "redis.container.yaml:6") || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown field in a container service: %v", err)
	}
}
