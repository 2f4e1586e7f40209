package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pibake/pibake/disk/fat"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/disk/mbr"
	"github.com/pibake/pibake/flash"
	"github.com/pibake/pibake/provision"
	"github.com/pibake/pibake/vm"
)

// First-boot provisioning on the device, as a user does it: a file put on
// the card's bootsel partition after flashing (pibake's own, or the
// cloud-init files Raspberry Pi Imager writes), applied by the image at
// first boot, then erased. The tests log in over SSH with the key the
// file authorized, through a forwarded port.

// sshKey makes a throw-away key pair; it returns the private key's path
// and the public key line.
func sshKey(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e@pibake", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return key, strings.TrimSpace(string(pub))
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// putBootsel writes files into the root of the image's bootsel partition,
// as a laptop (or pibake flash --provision) does after flashing.
func putBootsel(t *testing.T, img string, files map[string]string) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := flash.PutBootselFile(f, st.Size(), name, []byte(data), time.Unix(1700000000, 0)); err != nil {
			t.Fatal(err)
		}
	}
}

// bootsel returns the raw bytes of the image's bootsel partition and the
// names of the files in its root directory.
func bootsel(t *testing.T, img string) ([]byte, []string) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, entries, err := mbr.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Number != layout.Number(layout.Bootsel) {
			continue
		}
		raw := make([]byte, int64(e.Sectors)*mbr.SectorSize)
		if _, err := f.ReadAt(raw, int64(e.Start)*mbr.SectorSize); err != nil {
			t.Fatal(err)
		}
		fsys, err := fat.Open(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatalf("bootsel: %v", err)
		}
		var names []string
		err = fsys.Walk(func(p string, isDir bool, _ int64) error {
			if !strings.Contains(strings.TrimPrefix(p, "/"), "/") {
				names = append(names, strings.TrimPrefix(p, "/"))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw, names
	}
	t.Fatal("no bootsel partition")
	return nil, nil
}

// noSecrets fails if any secret is still on bootsel, in a file, in a
// deleted file's clusters or anywhere else in the partition.
func noSecrets(t *testing.T, img string, secrets ...string) []string {
	t.Helper()
	raw, names := bootsel(t, img)
	for _, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("bootsel still holds the secret %q after first boot", s)
		}
	}
	return names
}

// sshMarker on bootsel makes the e2e report wait for an SSH login (it is
// not a provisioning file and stays).
const sshMarker = "e2e-wait-ssh"

func waitForSSH(t *testing.T, img string) {
	t.Helper()
	putBootsel(t, img, map[string]string{sshMarker: "wait: the e2e report waits for an SSH login\n"})
}

// provisionedBoot boots img with SSH forwarded and the test's name server;
// when the guest says it waits for a login, it runs cmd over SSH with key
// as user pi, which ends with letting the guest's report go on.
func provisionedBoot(t *testing.T, name, img, key, cmd string) (report, string) {
	t.Helper()
	port := freePort(t)
	dns := serveDNS(t, map[string]string{serverName: serverAddr})
	var (
		mu     sync.Mutex
		sshOut string
		once   sync.Once
	)
	var wg sync.WaitGroup
	login := func() {
		defer wg.Done()
		args := []string{"-i", key, "-p", strconv.Itoa(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "pi@127.0.0.1", cmd + "; touch /tmp/e2e-ssh-done"}
		var out []byte
		var err error
		for i := 0; i < 3; i++ { // sshd may still be starting
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, err = exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
			cancel()
			if err == nil {
				break
			}
			time.Sleep(5 * time.Second)
		}
		mu.Lock()
		defer mu.Unlock()
		sshOut = string(out)
		if err != nil {
			sshOut = "ssh failed: " + err.Error() + ": " + sshOut
		}
	}
	opts := vm.Options{Image: img, Persist: true, Forwards: []vm.Forward{{HostPort: port, GuestPort: 22}}, GuestCmd: map[string]string{guestDNS: guestRelay(t, dns.addr)}}
	r := bootHook(t, name, opts, 10*time.Minute, func(line string, _ time.Duration) {
		if strings.Contains(line, "E2E-SSH-READY") {
			once.Do(func() { wg.Add(1); go login() })
		}
	})
	wg.Wait()
	t.Logf("%s: %s", name, dns)
	mu.Lock()
	defer mu.Unlock()
	return r, sshOut
}

// The pibake provisioning file of TestBoot's first boot.
const (
	wifiSecret  = "E2E-wifi-passphrase-7d1f"
	tokenSecret = "E2E-api-token-4be2c9"
)

func provisionFile(pub string) string {
	return `hostname: edge-042
timezone: Europe/Paris
wifi:
  country: FR
  networks:
    - ssid: e2e-shop
      passphrase: "` + wifiSecret + `"
users:
  - name: pi
    ssh_keys: ["` + pub + `"]
files:
  - path: e2e/api-token
    mode: "0600"
    owner: pi:pi
    content: "` + tokenSecret + `\n"
  - path: e2e/hello
    content: "placed by provisioning\n"
`
}

// TestProvisionImager is a first boot with the cloud-init files Raspberry
// Pi Imager writes to the boot partition for its OS customisation
// (init_format cloudinit-rpi), in the form its source generates them:
// the host name, the user's key and password hash, the time zone, the
// Wi-Fi network with its pre-derived PSK, plus settings pibake does not
// apply (packages, keyboard, runcmd), which are logged and skipped. A
// second boot then finds a malformed pibake file on the card: the device
// boots, stays reachable, applies nothing of it and erases it.
func TestProvisionImager(t *testing.T) {
	story(t, laneUpdate)
	key, pub := sshKey(t)
	img := copyImage(t, buildE2E(t), 0)
	waitForSSH(t, img)
	const psk = "0aef6db19d2b33b47ad0c92e3a2bf07a1d6d6e7c2cb7f5e8cbd6f1b0c2e9a4d3"
	putBootsel(t, img, map[string]string{
		provision.MetaData: "instance-id: rpi-imager-1764590400000\n",
		provision.UserData: `#cloud-config
hostname: kitchen-pi
manage_etc_hosts: true
packages:
- avahi-daemon
apt:
  conf: |
    Acquire {
      Check-Date "false";
    };
timezone: Europe/London
keyboard:
  model: pc105
  layout: "gb"
user:
  name: pi
  passwd: "$y$j9T$4nVqKQmZkJ0Vh0Qn3d0bX/$1mJ2cYgE5m3v9Yp8fRk8o6fQH3Wm3wq5eGm1h6Qkq32"
  lock_passwd: false
  ssh_authorized_keys:
    - ` + pub + `
ssh_pwauth: false
runcmd:
- [ systemctl, enable, --now, ssh ]
write_files:
- path: /data/e2e/hello
  content: "never placed: write_files is not applied"
`,
		provision.NetworkConfig: `network:
  version: 2
  wifis:
    renderer: networkd
    wlan0:
      dhcp4: true
      regulatory-domain: "GB"
      access-points:
        "e2e-kitchen":
          password: "` + psk + `"
      optional: true
`,
	})
	r, out := provisionedBoot(t, "imager-first-boot", img, key, "hostname; cat /etc/timezone; sudo -n true 2>&1 | head -n 1")
	expect(t, r, "state", "running")
	expect(t, r, "failed", "")
	expect(t, r, "hostname", "kitchen-pi")
	if !strings.HasPrefix(out, "kitchen-pi\nEurope/London\n") {
		t.Errorf("SSH login with the key from Imager's user-data: %q", out)
	}
	expect(t, r, "wifi", "600 country=GB")
	for _, w := range []string{"runcmd", "packages", "keyboard"} {
		if !strings.Contains(r.console, w) {
			t.Errorf("the journal does not say %s was not applied", w)
		}
	}
	names := noSecrets(t, img, psk, pub[20:60])
	for _, n := range names {
		if n == provision.UserData || n == provision.NetworkConfig || n == provision.MetaData {
			t.Errorf("%s still on bootsel after first boot (files: %v)", n, names)
		}
	}

	// A malformed pibake file with a secret in it: nothing applied, the
	// device still boots and is reachable, the file is erased and a
	// secret-free error note is left for the laptop.
	const badSecret = "E2E-bad-file-passphrase-91c"
	putBootsel(t, img, map[string]string{provision.FileName: "hostname: never-set\nwifi:\n  country: FR\n  networks:\n    - ssid: x\n      pasphrase: " + badSecret + "\n"})
	r2, out2 := provisionedBoot(t, "imager-malformed", img, key, "hostname")
	// The refusal shows as the one failed unit (systemctl --failed), the
	// rest of the boot as usual.
	expect(t, r2, "state", "degraded")
	expect(t, r2, "failed", "pibake-provision.service,")
	expect(t, r2, "hello", "active")
	expect(t, r2, "hostname", "kitchen-pi")
	if strings.TrimSpace(out2) != "kitchen-pi" {
		t.Errorf("SSH after a malformed provisioning file: %q", out2)
	}
	if !strings.Contains(r2.console, "did you mean passphrase?") {
		t.Error("the console does not name the field the unknown key may stand for")
	}
	names = noSecrets(t, img, badSecret)
	if !containsFold(names, "pibake-provision.error.txt") || containsFold(names, provision.FileName) {
		t.Errorf("bootsel after a malformed file: %v; want the error note and no provisioning file", names)
	}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
