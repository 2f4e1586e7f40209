package provision

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/internal/hosttool"
)

const secret = "S3cret-Passphrase-4711"

// vfat makes a FAT32 image and mounts it at the returned folder, with the
// kernel's vfat as the device does (updater/device's options) or, on a
// kernel without vfat, with fusefat; umount unmounts it (again safe) and
// returns the image's raw bytes. fsck.vfat -n checks it at the end.
func vfat(t *testing.T) (string, func() []byte) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting a FAT image needs root")
	}
	mkfs := hosttool.Need(t, "mkfs.vfat", "dosfstools")
	fsck := hosttool.Need(t, "fsck.vfat", "dosfstools")
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "bootsel.img"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	f, _ := os.Create(img)
	f.Truncate(40 << 20)
	f.Close()
	run(mkfs, "-F", "32", "-n", "BOOTSEL", img)
	var daemon *exec.Cmd
	if fs, _ := os.ReadFile("/proc/filesystems"); bytes.Contains(fs, []byte("\tvfat\n")) {
		run("mount", "-t", "vfat", "-o", "loop,sync,umask=077,noexec,nosuid,nodev", img, mnt)
	} else {
		daemon = exec.Command(hosttool.Need(t, "fusefat", "fusefat"), "-f", "-o", "rw+", img, mnt)
		if err := daemon.Start(); err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			if m, _ := os.ReadFile("/proc/mounts"); bytes.Contains(m, []byte(" "+mnt+" ")) {
				break
			}
			if i == 100 {
				t.Fatal("fusefat did not mount the image in 5 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Log("the kernel has no vfat: mounted with fusefat")
	}
	mounted := true
	umount := func() []byte {
		if mounted {
			run("umount", mnt)
			if daemon != nil {
				daemon.Wait() // its last writes reach the image before it exits
			}
			mounted = false
		}
		data, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	t.Cleanup(func() {
		umount()
		if out, err := exec.Command(fsck, "-n", img).CombinedOutput(); err != nil {
			t.Errorf("fsck.vfat -n: %v\n%s", err, out)
		}
	})
	return mnt, umount
}

// provisioning writes a file holding the secret several times, across
// several clusters, the way a laptop would.
func provisioningFile(t *testing.T, mnt, body string) {
	t.Helper()
	pad := "# " + strings.Repeat("x", 1000) + "\n"
	data := body + strings.Repeat(pad, 3) + "# " + secret + "\n" + strings.Repeat(pad, 3) + "# " + secret + "\n"
	if err := os.WriteFile(filepath.Join(mnt, FileName), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	// What Imager writes too, with the same secret in its PSK's place.
	os.WriteFile(filepath.Join(mnt, "config.txt"), []byte("kernel=u-boot.bin\n"), 0o600)
}

func TestRunWipesOnVFAT(t *testing.T) {
	for _, c := range []struct {
		name, body string
		ok         bool
	}{
		{"applied", "hostname: box-1\nwifi:\n  country: FR\n  networks:\n    - ssid: Home\n      passphrase: " + secret + "\n", true},
		{"refused", "hostname: box-1\nwifi:\n  country: FR\n  networks:\n    - ssid: Home\n      pasphrase: " + secret + "\n", false},
		{"malformed", "hostname: box-1\nwifi: [\n  passphrase: " + secret + "\n", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			mnt, umount := vfat(t)
			provisioningFile(t, mnt, c.body)
			exec.Command("sync").Run()
			root := target(t)
			out, err := Run(context.Background(), mnt, root, nil)
			if c.ok != (err == nil) || out.Applied != c.ok {
				t.Fatalf("Run: %+v, %v", out, err)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error carries the secret: %v", err)
			}
			if _, err := os.Stat(filepath.Join(mnt, FileName)); !os.IsNotExist(err) {
				t.Errorf("%s is still on bootsel: %v", FileName, err)
			}
			msg, err := os.ReadFile(filepath.Join(mnt, ErrorFile))
			if c.ok != os.IsNotExist(err) {
				t.Errorf("error file: %q %v", msg, err)
			}
			if bytes.Contains(msg, []byte(secret)) {
				t.Errorf("the error file carries the secret: %s", msg)
			}
			t.Logf("error file: %s", msg)
			if c.ok && read(t, root, "etc/hostname") != "box-1\n" {
				t.Error("not applied")
			}
			if raw := umount(); bytes.Contains(raw, []byte(secret)) {
				t.Errorf("the secret is still in the FAT image's bytes at %d", bytes.Index(raw, []byte(secret)))
			}
			if c.ok && !(record{root: root}).has(out.Mark) {
				t.Error("not recorded")
			}
		})
	}
}

// TestWipeNeedsTheOverwrite: removing the file alone leaves the secret in
// the image, so the test above would see a missing overwrite.
func TestWipeNeedsTheOverwrite(t *testing.T) {
	mnt, umount := vfat(t)
	provisioningFile(t, mnt, "hostname: a\n")
	saved := overwrite
	overwrite = func(f *os.File, size int64) error { return nil }
	defer func() { overwrite = saved }()
	if err := Wipe(filepath.Join(mnt, FileName)); err != nil {
		t.Fatal(err)
	}
	if raw := umount(); !bytes.Contains(raw, []byte(secret)) {
		t.Error("without the overwrite the secret is gone too: this test cannot see a missing overwrite")
	}
}

// TestRunOnce: the same files are applied once; found again (the wipe
// failed, or a copy came back) they are only erased.
func TestRunOnce(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("chown needs root")
	}
	boot, root := t.TempDir(), target(t)
	body := []byte("hostname: box-2\n")
	os.WriteFile(filepath.Join(boot, FileName), body, 0o600)
	if out, err := Run(context.Background(), boot, root, nil); err != nil || !out.Applied {
		t.Fatalf("%+v %v", out, err)
	}
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("changed-later\n"), 0o644)
	os.WriteFile(filepath.Join(boot, FileName), body, 0o600)
	out, err := Run(context.Background(), boot, root, nil)
	if err != nil || out.Applied || !out.Already {
		t.Fatalf("second run: %+v %v", out, err)
	}
	if read(t, root, "etc/hostname") != "changed-later\n" {
		t.Error("applied twice")
	}
	if _, err := os.Stat(filepath.Join(boot, FileName)); !os.IsNotExist(err) {
		t.Error("not erased")
	}
	// Nothing on bootsel: nothing to do.
	if out, err := Run(context.Background(), boot, root, nil); err != nil || len(out.Found) != 0 {
		t.Errorf("empty bootsel: %+v %v", out, err)
	}
	// Both kinds: refused, both erased.
	os.WriteFile(filepath.Join(boot, FileName), body, 0o600)
	os.WriteFile(filepath.Join(boot, UserData), []byte("#cloud-config\nhostname: x\n"), 0o600)
	if _, err := Run(context.Background(), boot, root, nil); err == nil || !strings.Contains(err.Error(), "keep one kind") {
		t.Errorf("both kinds: %v", err)
	}
	for _, f := range []string{FileName, UserData} {
		if _, err := os.Stat(filepath.Join(boot, f)); !os.IsNotExist(err) {
			t.Errorf("%s not erased", f)
		}
	}
}
