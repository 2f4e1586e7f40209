// Package testbase writes a small synthetic Debian base tar for tests: the
// files the rootfs transform and the builder read (account files, dpkg
// status, a "kernel", device trees, a kernel config), plus a few ordinary
// files, directories, a symlink and /tmp leftovers that must be dropped.
package testbase

import (
	"archive/tar"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"
)

// KernelVersion is the version of the fake kernel in the base.
const KernelVersion = "6.12.0-test-arm64"

// modulesDep lists the fake kernel modules (dependencies after the colon).
const modulesDep = `kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/virtio/virtio_mmio.ko.xz:
kernel/fs/squashfs/squashfs.ko.xz:
kernel/crypto/crc32c_generic.ko.xz:
kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz
kernel/fs/jbd2/jbd2.ko.xz:
kernel/fs/mbcache.ko.xz:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/drivers/mmc/host/sdhci-iproc.ko.xz:
kernel/drivers/mmc/host/bcm2835.ko.xz:
kernel/drivers/regulator/gpio-regulator.ko.xz:
kernel/drivers/regulator/fixed.ko.xz:
kernel/drivers/watchdog/i6300esb.ko.xz:
kernel/drivers/watchdog/bcm2835_wdt.ko.xz:
`

// Package is a package the fake dpkg status lists.
type Package struct{ Name, Version, Arch string }

// Write creates the base tar at path, with the kernel where trixie's
// 6.12 packages put it (/boot, /usr/lib/linux-image-V).
func Write(path string, pkgs []Package) error { return write(path, pkgs, false) }

// WriteModulesLayout creates the base tar at path with the kernel where
// the 7.x packages of trixie-backports put it (/usr/lib/modules/V/
// vmlinuz, config and dtb/), built with the Pi 5's SD driver
// (sdhci-brcmstb, a module) and what it needs.
func WriteModulesLayout(path string, pkgs []Package) error { return write(path, pkgs, true) }

// Pi5Config is the kernel config of WriteModulesLayout's base.
const Pi5Config = "CONFIG_SQUASHFS=m\nCONFIG_MMC_SDHCI_BRCMSTB=m\nCONFIG_GPIO_BRCMSTB=m\nCONFIG_PINCTRL_BCM2712=m\n"

// pi5Modules are the modules WriteModulesLayout adds, and their aliases.
const (
	pi5ModulesDep   = "kernel/drivers/mmc/host/sdhci-brcmstb.ko.xz: kernel/drivers/mmc/host/sdhci-pltfm.ko.xz\nkernel/drivers/mmc/host/sdhci-pltfm.ko.xz:\n"
	Pi5ModulesAlias = "alias of:N*T*Cbrcm,bcm2712-sdhciC* sdhci_brcmstb\nalias of:N*T*Cbrcm,bcm2712-sdhci sdhci_brcmstb\n"
)

func write(path string, pkgs []Package, modulesLayout bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	b := &base{tw: tar.NewWriter(f), modulesLayout: modulesLayout}
	b.etc()
	b.usr()
	b.deviceTrees()
	b.symlink("bin", "usr/bin")
	b.boot()
	b.modules()
	b.file("usr/sbin/sshd", 0o755, 0, "\x7fELF fake sshd\n")
	b.runtimes(pkgs)
	b.dpkg(pkgs)
	b.leftovers()
	if b.err == nil {
		b.err = b.tw.Close()
	}
	if b.err != nil {
		f.Close()
		return fmt.Errorf("testbase: writing %s: %w", path, b.err)
	}
	return f.Close()
}

// base writes the entries of the base tar in order. The first error
// sticks: every later entry is skipped, and Write returns it.
type base struct {
	tw            *tar.Writer
	err           error
	modulesLayout bool // the kernel's files in /usr/lib/modules/V
}

// modTime is the time of every entry.
var modTime = time.Unix(1600000000, 0)

func (b *base) header(h *tar.Header) {
	if b.err == nil {
		b.err = b.tw.WriteHeader(h)
	}
}

func (b *base) dir(name string, mode int64) {
	b.header(&tar.Header{Name: "./" + name, Typeflag: tar.TypeDir, Mode: mode, ModTime: modTime})
}

func (b *base) file(name string, mode int64, gid int, data string) {
	b.header(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: mode, Gid: gid, Size: int64(len(data)), ModTime: modTime})
	if b.err == nil {
		_, b.err = b.tw.Write([]byte(data))
	}
}

func (b *base) symlink(name, target string) {
	b.header(&tar.Header{Name: "./" + name, Typeflag: tar.TypeSymlink, Linkname: target, ModTime: modTime})
}

// etc writes the root and /etc: the account files, a host name, a host
// key and an apt source the transform must replace or drop.
func (b *base) etc() {
	b.dir("", 0o755)
	b.dir("etc/", 0o755)
	b.file("etc/passwd", 0o644, 0, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
	b.file("etc/group", 0o644, 0, "root:x:0:\ndaemon:x:1:\nadm:x:4:\nshadow:x:42:\nsystemd-journal:x:999:\n")
	b.file("etc/shadow", 0o640, 42, "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
	b.file("etc/gshadow", 0o640, 42, "root:*::\ndaemon:*::\nadm:*::\nshadow:*::\nsystemd-journal:!*::\n")
	b.file("etc/hostname", 0o644, 0, "build-host\n")
	b.dir("etc/ssh/", 0o755)
	b.file("etc/ssh/ssh_host_ed25519_key", 0o600, 0, "random key made at bootstrap\n")
	b.dir("etc/apt/", 0o755)
	b.file("etc/apt/sources.list", 0o644, 0, "deb file:///tmp/pibake-repo-123 ./\n")
	b.dir("etc/systemd/", 0o755)
	b.dir("etc/systemd/system/", 0o755)
}

// usr writes a few programs and the units the network setup enables,
// with [Install] sections shaped like Debian's (Also=, Alias=, a template
// with %i).
func (b *base) usr() {
	b.dir("usr/", 0o755)
	b.dir("usr/bin/", 0o755)
	b.file("usr/bin/true", 0o755, 0, "\x7fELF fake\n")
	b.dir("usr/lib/", 0o755)
	b.dir("usr/lib/systemd/", 0o755)
	b.file("usr/lib/systemd/systemd", 0o755, 0, "\x7fELF fake systemd\n")
	b.dir("usr/lib/systemd/system/", 0o755)
	b.file("usr/lib/systemd/system/systemd-networkd.service", 0o644, 0,
		"[Service]\nExecStart=/usr/lib/systemd/systemd-networkd\n[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n")
	b.file("usr/lib/systemd/system/systemd-networkd.socket", 0o644, 0, "[Socket]\n[Install]\nWantedBy=sockets.target\n")
	b.file("usr/lib/systemd/system/systemd-resolved.service", 0o644, 0,
		"[Service]\n[Install]\nWantedBy=sysinit.target\nAlias=dbus-org.freedesktop.resolve1.service\n")
	b.file("usr/lib/systemd/system/systemd-timesyncd.service", 0o644, 0,
		"[Service]\n[Install]\nWantedBy=sysinit.target\nAlias=dbus-org.freedesktop.timesync1.service\n")
	b.file("usr/lib/systemd/system/wpa_supplicant@.service", 0o644, 0,
		"[Service]\nExecStart=/sbin/wpa_supplicant -c/etc/wpa_supplicant/wpa_supplicant-%I.conf -i%I\n[Install]\nAlias=multi-user.target.wants/wpa_supplicant@%i.service\n")
}

// deviceTrees writes the kernel package's device trees of the Pi 3, 4 and
// 5 under the names Debian's kernel ships them (the modules' own trees,
// each with its model, so that their bytes differ).
func (b *base) deviceTrees() {
	d := "usr/lib/linux-image-" + KernelVersion + "/"
	if b.modulesLayout {
		b.dir("usr/lib/modules/", 0o755)
		b.dir("usr/lib/modules/"+KernelVersion+"/", 0o755)
		d = "usr/lib/modules/" + KernelVersion + "/dtb/"
	}
	b.dir(d, 0o755)
	b.dir(d+"broadcom/", 0o755)
	for _, name := range DTBNames {
		b.file(d+"broadcom/"+name, 0o644, 0, string(DTB(name)))
	}
}

// boot writes /boot: the kernel, the bootstrap's initramfs (which the
// builder replaces) and the kernel config.
func (b *base) boot() {
	b.dir("boot/", 0o755)
	if b.modulesLayout {
		d := "usr/lib/modules/" + KernelVersion + "/"
		b.file(d+"vmlinuz", 0o644, 0, string(fakeKernel()))
		b.file(d+"config", 0o644, 0, Pi5Config)
		// What linux-base's hooks may leave in /boot: a link, not a file.
		b.symlink("boot/vmlinuz-"+KernelVersion, "../"+d+"vmlinuz")
		return
	}
	b.file("boot/vmlinuz-"+KernelVersion, 0o644, 0, string(fakeKernel()))
	b.file("boot/initrd.img-"+KernelVersion, 0o644, 0, "initramfs made at bootstrap\n")
	b.file("boot/config-"+KernelVersion, 0o644, 0, "CONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_XZ=y\nCONFIG_SQUASHFS_ZSTD=y\n")
}

// fakeKernel is a kernel big enough to span many FAT clusters, with an
// arm64 Image header, as Debian's vmlinuz has: text_offset 0, image_size
// 4 MiB (bss included), flags 0xa, the magic at 56.
func fakeKernel() []byte {
	kernel := make([]byte, 3<<20)
	for i := range kernel {
		kernel[i] = byte(i*7 + i>>11)
	}
	copy(kernel, make([]byte, 64))
	binary.LittleEndian.PutUint64(kernel[16:], 4<<20)
	binary.LittleEndian.PutUint64(kernel[24:], 0xa)
	copy(kernel[56:], "ARM\x64")
	return kernel
}

// modules writes the kernel's module tables and a file for every module
// modules.dep lists.
func (b *base) modules() {
	d := "usr/lib/modules/" + KernelVersion + "/"
	dep, alias := modulesDep, ModulesAlias
	if b.modulesLayout {
		dep, alias = dep+pi5ModulesDep, alias+Pi5ModulesAlias
	} else {
		b.dir("usr/lib/modules/", 0o755)
		b.dir(d, 0o755)
	}
	b.file(d+"modules.dep", 0o644, 0, dep)
	b.file(d+"modules.alias", 0o644, 0, alias)
	b.file(d+"modules.builtin", 0o644, 0, "kernel/drivers/mmc/core/mmc_block.ko\nkernel/drivers/virtio/virtio_pci.ko\n")
	for _, line := range strings.Split(strings.TrimSpace(dep), "\n") {
		m, _, _ := strings.Cut(line, ":")
		b.file(d+m, 0o644, 0, "fake module "+m)
	}
}

// runtimes writes the programs the container runtimes' packages bring,
// for those of pkgs.
func (b *base) runtimes(pkgs []Package) {
	bins := map[string][]string{"podman": {"usr/bin/podman"}, "docker.io": {"usr/sbin/dockerd"}, "docker-cli": {"usr/bin/docker"}}
	for _, p := range pkgs {
		for _, bin := range bins[p.Name] {
			b.file(bin, 0o755, 0, "\x7fELF fake "+bin+"\n")
		}
	}
}

// dpkg writes /var and a dpkg status that lists pkgs as installed.
func (b *base) dpkg(pkgs []Package) {
	status := ""
	for _, p := range pkgs {
		status += fmt.Sprintf("Package: %s\nStatus: install ok installed\nVersion: %s\nArchitecture: %s\nDescription: test package\n multi-line\n\n", p.Name, p.Version, p.Arch)
	}
	b.dir("var/", 0o755)
	b.dir("var/lib/", 0o755)
	b.dir("var/lib/dpkg/", 0o755)
	b.file("var/lib/dpkg/status", 0o644, 0, status)
}

// leftovers writes what a bootstrap leaves behind that the transform
// must drop (/tmp's and /run's contents) and an empty /home.
func (b *base) leftovers() {
	b.dir("tmp/", 0o1777)
	b.dir("tmp/pibake-repo-123/", 0o755)
	b.dir("home/", 0o755)
	b.dir("run/", 0o755)
	b.file("run/leftover", 0o644, 0, "x")
}
