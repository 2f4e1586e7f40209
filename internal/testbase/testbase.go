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
`

// Package is a package the fake dpkg status lists.
type Package struct{ Name, Version, Arch string }

// Write creates the base tar at path.
func Write(path string, pkgs []Package) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	mt := time.Unix(1600000000, 0)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeDir, Mode: mode, ModTime: mt})
	}
	file := func(name string, mode int64, gid int, data string) error {
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: mode, Gid: gid, Size: int64(len(data)), ModTime: mt}); err != nil {
			return err
		}
		_, err := tw.Write([]byte(data))
		return err
	}
	status := ""
	for _, p := range pkgs {
		status += fmt.Sprintf("Package: %s\nStatus: install ok installed\nVersion: %s\nArchitecture: %s\nDescription: test package\n multi-line\n\n", p.Name, p.Version, p.Arch)
	}
	// A fake kernel big enough to span many FAT clusters.
	kernel := make([]byte, 3<<20)
	for i := range kernel {
		kernel[i] = byte(i*7 + i>>11)
	}
	// With an arm64 Image header, as Debian's vmlinuz has: text_offset 0,
	// image_size 4 MiB (bss included), flags 0xa, the magic at 56.
	copy(kernel, make([]byte, 64))
	binary.LittleEndian.PutUint64(kernel[16:], 4<<20)
	binary.LittleEndian.PutUint64(kernel[24:], 0xa)
	copy(kernel[56:], "ARM\x64")
	steps := []func() error{
		func() error { return dir("", 0o755) },
		func() error { return dir("etc/", 0o755) },
		func() error {
			return file("etc/passwd", 0o644, 0, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
		},
		func() error {
			return file("etc/group", 0o644, 0, "root:x:0:\ndaemon:x:1:\nadm:x:4:\nshadow:x:42:\nsystemd-journal:x:999:\n")
		},
		func() error {
			return file("etc/shadow", 0o640, 42, "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n")
		},
		func() error {
			return file("etc/gshadow", 0o640, 42, "root:*::\ndaemon:*::\nadm:*::\nshadow:*::\nsystemd-journal:!*::\n")
		},
		func() error { return file("etc/hostname", 0o644, 0, "build-host\n") },
		func() error { return dir("etc/ssh/", 0o755) },
		func() error { return file("etc/ssh/ssh_host_ed25519_key", 0o600, 0, "random key made at bootstrap\n") },
		func() error { return dir("etc/apt/", 0o755) },
		func() error { return file("etc/apt/sources.list", 0o644, 0, "deb file:///tmp/pibake-repo-123 ./\n") },
		func() error { return dir("etc/systemd/", 0o755) },
		func() error { return dir("etc/systemd/system/", 0o755) },
		func() error { return dir("usr/", 0o755) },
		func() error { return dir("usr/bin/", 0o755) },
		func() error { return file("usr/bin/true", 0o755, 0, "\x7fELF fake\n") },
		func() error { return dir("usr/lib/", 0o755) },
		func() error { return dir("usr/lib/systemd/", 0o755) },
		func() error { return file("usr/lib/systemd/systemd", 0o755, 0, "\x7fELF fake systemd\n") },
		// Units the network setup enables, with [Install] sections shaped
		// like Debian's (Also=, Alias=, a template with %i).
		func() error { return dir("usr/lib/systemd/system/", 0o755) },
		func() error {
			return file("usr/lib/systemd/system/systemd-networkd.service", 0o644, 0,
				"[Service]\nExecStart=/usr/lib/systemd/systemd-networkd\n[Install]\nWantedBy=multi-user.target\nAlso=systemd-networkd.socket\nAlias=dbus-org.freedesktop.network1.service\n")
		},
		func() error {
			return file("usr/lib/systemd/system/systemd-networkd.socket", 0o644, 0, "[Socket]\n[Install]\nWantedBy=sockets.target\n")
		},
		func() error {
			return file("usr/lib/systemd/system/systemd-resolved.service", 0o644, 0,
				"[Service]\n[Install]\nWantedBy=sysinit.target\nAlias=dbus-org.freedesktop.resolve1.service\n")
		},
		func() error {
			return file("usr/lib/systemd/system/systemd-timesyncd.service", 0o644, 0,
				"[Service]\n[Install]\nWantedBy=sysinit.target\nAlias=dbus-org.freedesktop.timesync1.service\n")
		},
		func() error {
			return file("usr/lib/systemd/system/wpa_supplicant@.service", 0o644, 0,
				"[Service]\nExecStart=/sbin/wpa_supplicant -c/etc/wpa_supplicant/wpa_supplicant-%I.conf -i%I\n[Install]\nAlias=multi-user.target.wants/wpa_supplicant@%i.service\n")
		},
		func() error { return dir("usr/lib/linux-image-"+KernelVersion+"/", 0o755) },
		func() error { return dir("usr/lib/linux-image-"+KernelVersion+"/broadcom/", 0o755) },
		func() error {
			return file("usr/lib/linux-image-"+KernelVersion+"/broadcom/bcm2711-rpi-4-b.dtb", 0o644, 0, string(Pi4DTB()))
		},
		func() error {
			return file("usr/lib/linux-image-"+KernelVersion+"/broadcom/bcm2837-rpi-3-b.dtb", 0o644, 0, string(Pi3DTB()))
		},
		func() error {
			return file("usr/lib/linux-image-"+KernelVersion+"/broadcom/bcm2712-rpi-5-b.dtb", 0o644, 0, string(Pi5DTB()))
		},
		func() error {
			return tw.WriteHeader(&tar.Header{Name: "./bin", Typeflag: tar.TypeSymlink, Linkname: "usr/bin", ModTime: mt})
		},
		func() error { return dir("boot/", 0o755) },
		func() error { return file("boot/vmlinuz-"+KernelVersion, 0o644, 0, string(kernel)) },
		func() error { return file("boot/initrd.img-"+KernelVersion, 0o644, 0, "initramfs made at bootstrap\n") },
		func() error {
			return file("boot/config-"+KernelVersion, 0o644, 0, "CONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_XZ=y\nCONFIG_SQUASHFS_ZSTD=y\n")
		},
		func() error { return dir("usr/lib/modules/", 0o755) },
		func() error { return dir("usr/lib/modules/"+KernelVersion+"/", 0o755) },
		func() error {
			return file("usr/lib/modules/"+KernelVersion+"/modules.dep", 0o644, 0, modulesDep)
		},
		func() error {
			return file("usr/lib/modules/"+KernelVersion+"/modules.alias", 0o644, 0, ModulesAlias)
		},
		func() error {
			return file("usr/lib/modules/"+KernelVersion+"/modules.builtin", 0o644, 0, "kernel/drivers/mmc/core/mmc_block.ko\nkernel/drivers/virtio/virtio_pci.ko\n")
		},
		func() error {
			for _, line := range strings.Split(strings.TrimSpace(modulesDep), "\n") {
				m, _, _ := strings.Cut(line, ":")
				if err := file("usr/lib/modules/"+KernelVersion+"/"+m, 0o644, 0, "fake module "+m); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { return file("usr/sbin/sshd", 0o755, 0, "\x7fELF fake sshd\n") },
		func() error {
			// The programs the container runtimes' packages bring.
			bins := map[string][]string{"podman": {"usr/bin/podman"}, "docker.io": {"usr/sbin/dockerd"}, "docker-cli": {"usr/bin/docker"}}
			for _, p := range pkgs {
				for _, b := range bins[p.Name] {
					if err := file(b, 0o755, 0, "\x7fELF fake "+b+"\n"); err != nil {
						return err
					}
				}
			}
			return nil
		},
		func() error { return dir("var/", 0o755) },
		func() error { return dir("var/lib/", 0o755) },
		func() error { return dir("var/lib/dpkg/", 0o755) },
		func() error { return file("var/lib/dpkg/status", 0o644, 0, status) },
		func() error { return dir("tmp/", 0o1777) },
		func() error { return dir("tmp/pibake-repo-123/", 0o755) },
		func() error { return dir("home/", 0o755) },
		func() error { return dir("run/", 0o755) },
		func() error { return file("run/leftover", 0o644, 0, "x") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
