package bootinit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pibake/pibake/etcsum"
	"github.com/pibake/pibake/provision"
	"golang.org/x/sys/unix"
)

// etcWorld is a data partition's /etc overlay folder and a release's
// root, for the reconciliation.
type etcWorld struct {
	t         *testing.T
	dir, root string
	logs      []string
	upper     string
}

func newEtcWorld(t *testing.T) *etcWorld {
	d := t.TempDir()
	w := &etcWorld{t: t, dir: filepath.Join(d, "data", OverlayDir, "etc"), root: filepath.Join(d, "root")}
	w.upper = filepath.Join(w.dir, "upper")
	os.MkdirAll(w.upper, 0o755)
	return w
}

// boot reconciles for a release of the given version whose /etc is files
// (path: content); nil files: a release without a list.
func (w *etcWorld) boot(version string, files map[string]string) {
	w.t.Helper()
	os.RemoveAll(w.root)
	os.MkdirAll(filepath.Join(w.root, "etc/pibake"), 0o755)
	os.WriteFile(filepath.Join(w.root, "etc/pibake/release"), []byte("PIBAKE_NAME=demo\nPIBAKE_VERSION="+version+"\n"), 0o644)
	list := filepath.Join(w.root, etcsum.Path)
	if files != nil {
		l := etcsum.List{}
		for p, c := range files {
			l[p] = etcsum.Digest(etcsum.File, 0o644, 0, 0, []byte(c))
			os.MkdirAll(filepath.Dir(filepath.Join(w.root, "etc", p)), 0o755)
			os.WriteFile(filepath.Join(w.root, "etc", p), []byte(c), 0o644)
		}
		os.MkdirAll(filepath.Dir(list), 0o755)
		os.WriteFile(list, l.Marshal(), 0o644)
	}
	w.logs = nil
	r := EtcReconcile{List: list, Lower: filepath.Join(w.root, "etc"), Release: filepath.Join(w.root, "etc/pibake/release"), Upper: w.upper, Dir: w.dir,
		Log: func(f string, a ...any) { w.logs = append(w.logs, strings.TrimSpace(sprintf(f, a...))) }}
	if err := r.Run(); err != nil {
		w.t.Fatalf("reconcile %s: %v", version, err)
	}
}

// copyUp puts a copy of /etc/p in the upper layer, as overlayfs does.
func (w *etcWorld) copyUp(p, content string) {
	os.MkdirAll(filepath.Dir(filepath.Join(w.upper, p)), 0o755)
	os.WriteFile(filepath.Join(w.upper, p), []byte(content), 0o644)
}

// upperHas returns the upper layer's copy of p ("" if none).
func (w *etcWorld) upperHas(p string) string {
	b, err := os.ReadFile(filepath.Join(w.upper, p))
	if err != nil {
		return ""
	}
	return string(b)
}

func (w *etcWorld) replaced(batch, p string) string {
	b, err := os.ReadFile(filepath.Join(w.dir, ReplacedDir, batch, p))
	if err != nil {
		return ""
	}
	return string(b)
}

// TestEtcReconcile: a release's /etc changes apply on a device whose
// data partition holds copies of those files; local edits of files the
// release did not change, and local files, stay; /etc/pibake never comes
// from the data partition; a fallback to the release before puts the
// copies back.
func TestEtcReconcile(t *testing.T) {
	w := newEtcWorld(t)
	v1 := map[string]string{"hostname": "demo\n", "ssh/sshd_config": "PermitRootLogin no\n", "motd": "hello\n", "pibake/release": "PIBAKE_VERSION=1.0\n"}
	w.copyUp("hostname", "edited\n")
	w.copyUp("ssh/sshd_config", "PermitRootLogin yes # edited on 1.0\n")
	w.boot("1.0", v1) // the first boot with lists: nothing is known to have changed
	if w.upperHas("ssh/sshd_config") == "" || w.upperHas("hostname") != "edited\n" {
		t.Fatalf("the first boot with a list set copies aside: %v", w.logs)
	}
	w.copyUp("motd", "local motd\n")
	w.copyUp("new.conf", "made here\n")
	w.copyUp("local.conf", "only here\n")
	w.copyUp("pibake/updater.yaml", "keys: [RWSattacker]\n")
	v2 := map[string]string{"hostname": "demo\n", "ssh/sshd_config": "PermitRootLogin prohibit-password\n", "new.conf": "shipped\n", "pibake/release": "PIBAKE_VERSION=2.0\n"}
	w.boot("2.0", v2)
	for p, want := range map[string]string{"hostname": "edited\n", "local.conf": "only here\n"} {
		if got := w.upperHas(p); got != want {
			t.Errorf("2.0: /etc/%s is %q, want the local %q", p, got, want)
		}
	}
	for _, p := range []string{"ssh/sshd_config", "motd", "new.conf", "pibake/updater.yaml"} {
		if w.upperHas(p) != "" {
			t.Errorf("2.0: the data partition's /etc/%s still hides the release's", p)
		}
		if w.replaced("0001-2.0", p) == "" {
			t.Errorf("2.0: /etc/%s was not kept in replaced/0001-2.0", p)
		}
	}
	if len(w.logs) != 4 || !strings.Contains(strings.Join(w.logs, "\n"), "/etc/ssh/sshd_config: this release changed it") {
		t.Errorf("2.0: console messages %q", w.logs)
	}
	w.boot("2.0", v2) // the same release again: nothing to do
	if len(w.logs) != 0 {
		t.Errorf("2.0 again: %q", w.logs)
	}
	// 2.0's trial fails; the device falls back to 1.0: the copies made on
	// 1.0 come back, the ones made on 2.0 are set aside.
	w.copyUp("ssh/sshd_config", "edited on 2.0\n")
	w.copyUp("pibake/release", "forged\n")
	w.boot("1.0", v1)
	for p, want := range map[string]string{"ssh/sshd_config": "PermitRootLogin yes # edited on 1.0\n", "motd": "local motd\n", "new.conf": "made here\n", "hostname": "edited\n"} {
		if got := w.upperHas(p); got != want {
			t.Errorf("back on 1.0: /etc/%s is %q, want %q (%q)", p, got, want, w.logs)
		}
	}
	if w.upperHas("pibake/updater.yaml") != "" || w.upperHas("pibake/release") != "" {
		t.Error("back on 1.0: the image's own folder came from the data partition")
	}
	if w.replaced("0002-1.0", "ssh/sshd_config") != "edited on 2.0\n" {
		t.Error("back on 1.0: the copy made on 2.0 was not set aside")
	}
	var b batch
	data, _ := os.ReadFile(filepath.Join(w.dir, ReplacedDir, "0001-2.0.json"))
	if json.Unmarshal(data, &b); !b.Restored {
		t.Errorf("batch 1 not marked restored: %s", data)
	}
	// An image without a list: nothing known; the next one compares with
	// nothing either.
	w.boot("0.9", nil)
	w.boot("1.0", v1)
	if w.upperHas("ssh/sshd_config") == "" {
		t.Error("after a release without a list, copies were set aside")
	}
}

// TestEtcReconcileHiders: what hides a changed file is set aside too: a
// whiteout (the file deleted locally), a parent replaced by a file, an
// opaque folder (removed and made again locally).
func TestEtcReconcileHiders(t *testing.T) {
	w := newEtcWorld(t)
	v1 := map[string]string{"a.conf": "1", "ssh/sshd_config": "1", "x/y/z": "1", "keep": "1"}
	v2 := map[string]string{"a.conf": "2", "ssh/sshd_config": "2", "x/y/z": "2", "keep": "1"}
	w.boot("1.0", v1)
	whiteout := unix.Mknod(filepath.Join(w.upper, "a.conf"), unix.S_IFCHR, 0) == nil
	w.copyUp("ssh", "a file where the folder was")
	os.MkdirAll(filepath.Join(w.upper, "x/y"), 0o755)
	w.copyUp("x/y/other", "local")
	isOpaque := unix.Setxattr(filepath.Join(w.upper, "x"), "trusted.overlay.opaque", []byte("y"), 0) == nil
	w.copyUp("keep", "local")
	w.boot("2.0", v2)
	if _, err := os.Lstat(filepath.Join(w.upper, "ssh")); err == nil {
		t.Error("a file over the release's /etc/ssh folder was not set aside")
	}
	if whiteout {
		if _, err := os.Lstat(filepath.Join(w.upper, "a.conf")); err == nil {
			t.Error("a whiteout of a changed file was not set aside")
		}
	} else {
		t.Log("mknod not permitted: whiteouts not checked")
	}
	if isOpaque {
		if _, err := os.Lstat(filepath.Join(w.upper, "x")); err == nil {
			t.Error("an opaque folder over a changed file was not set aside")
		}
	} else if _, err := os.Lstat(filepath.Join(w.upper, "x/y/other")); err != nil {
		t.Error("a plain upper folder was set aside whole")
	}
	if w.upperHas("keep") != "local" {
		t.Error("a copy of a file the release did not change was set aside")
	}
}

// TestEtcReconcileDeviceSettings: what each device makes its own (a
// provisioned host name, time zone, keys) stays when a release changes
// the file; the account databases are merged, so a provisioned password
// survives a release that adds a system user, and the user gets it.
func TestEtcReconcileDeviceSettings(t *testing.T) {
	w := newEtcWorld(t)
	v1 := map[string]string{"hostname": "demo\n", "timezone": "Etc/UTC\n",
		"shadow": "root:*:20000:0:99999:7:::\npi:*:20000:0:99999:7:::\n", "passwd": "root:x:0:0::/root:/bin/sh\npi:x:1000:1000::/home/pi:/bin/bash\n"}
	w.boot("1.0", v1)
	w.copyUp("hostname", "kitchen\n")
	w.copyUp("timezone", "Europe/Paris\n")
	w.copyUp("ssh/authorized_keys.d/pi", "ssh-ed25519 AAAA pi\n")
	w.copyUp("shadow", "root:*:20000:0:99999:7:::\npi:$y$j9T$hash:20001:0:99999:7:::\nlocal:$y$x:20002::::::\n")
	os.Chmod(filepath.Join(w.upper, "shadow"), 0o640)
	v2 := map[string]string{"hostname": "demo2\n", "timezone": "Europe/Berlin\n", "ssh/authorized_keys.d/pi": "ssh-ed25519 BBBB release\n",
		"shadow": "root:*:20000:0:99999:7:::\n_new:!:20100::::::\npi:*:20000:0:99999:7:::\n", "passwd": "root:x:0:0::/root:/bin/sh\n_new:x:990:990::/nonexistent:/usr/sbin/nologin\npi:x:1000:1000::/home/pi:/bin/bash\n"}
	w.boot("2.0", v2)
	for p, want := range map[string]string{"hostname": "kitchen\n", "timezone": "Europe/Paris\n", "ssh/authorized_keys.d/pi": "ssh-ed25519 AAAA pi\n"} {
		if got := w.upperHas(p); got != want {
			t.Errorf("/etc/%s: %q, want the device's %q", p, got, want)
		}
	}
	want := "root:*:20000:0:99999:7:::\n_new:!:20100::::::\npi:$y$j9T$hash:20001:0:99999:7:::\nlocal:$y$x:20002::::::\n"
	if got := w.upperHas("shadow"); got != want {
		t.Errorf("merged shadow:\n%s\nwant:\n%s", got, want)
	}
	if fi, err := os.Stat(filepath.Join(w.upper, "shadow")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("merged shadow's mode: %v %v", fi, err)
	}
	if w.replaced("0001-2.0", "shadow") == "" {
		t.Error("the copy before the merge is not kept")
	}
	if w.upperHas("passwd") != "" {
		t.Error("passwd had no copy on the data partition and now has one")
	}
}

// TestProvisionedPathsAreDeviceOwned: every file provisioning writes
// under /etc is kept across releases (or merged: the account databases).
func TestProvisionedPathsAreDeviceOwned(t *testing.T) {
	for _, p := range []string{provision.HostnamePath, provision.HostsPath, provision.WPAPath, provision.KeysDir + "/pi",
		provision.SSHDropIn, provision.LocaltimePath, provision.TimezonePath, provision.ShadowPath} {
		rel, ok := strings.CutPrefix(p, "/etc/")
		if !ok || !(under(rel, DeviceOwned) || slices.Contains(accountFiles, rel)) {
			t.Errorf("provisioning writes %s, which a release would take back", p)
		}
	}
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
