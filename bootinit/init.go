package bootinit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/disk/layout"
	"github.com/pibake/pibake/etcsum"
	"golang.org/x/sys/unix"
)

// Paths inside the initramfs.
const (
	ModuleList = "/lib/modules/pibake.modules" // written by the builder, in load order
	newRoot    = "/newroot"
)

// dataPart is the data partition's number, from the layout.
var dataPart = layout.Number(layout.Data)

// Mount points in the root filesystem the builder creates.
const (
	DataMount = "/data" // the data partition
	// OverlayDir holds the writable layers of /etc and /var on the data partition.
	OverlayDir = "pibake/overlay"
)

// Overlaid are the folders of the read-only root that get a writable
// overlay on the data partition: whatever must come from the image alone
// (the update agent's keys and health checks, the list of /etc) lives
// elsewhere, under /usr.
var Overlaid = []string{"etc", "var"}

// initLog writes to the kernel log (w is /dev/kmsg) or, without one, to
// stderr.
type initLog struct {
	w    io.Writer
	kmsg bool
}

// printf logs at the kernel's notice level: the console shows it unless
// the command line says quiet.
func (l initLog) printf(format string, a ...any) { l.level(5, format, a...) }

// alertf logs at the critical level, which the console shows even when
// quiet: for what someone at the device must act on.
func (l initLog) alertf(format string, a ...any) { l.level(2, format, a...) }

func (l initLog) level(n int, format string, a ...any) {
	msg := fmt.Sprintf("pibake-init: "+format, a...)
	if l.kmsg {
		fmt.Fprintf(l.w, "<%d>%s\n", n, msg)
	} else {
		fmt.Fprintln(l.w, msg)
	}
}

// Main is PID 1 of the initramfs. It only returns on failure, after which
// the caller reboots.
func Main() error {
	for _, m := range []struct{ src, dst, typ string }{{"devtmpfs", "/dev", "devtmpfs"}, {"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}} {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.typ, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	log := initLog{w: os.Stderr}
	if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		log = initLog{w: kmsg, kmsg: true}
	}
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	cl, err := bootchain.ParseCmdline(string(raw))
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := loadModules(ModuleList)
	if err != nil {
		return err
	}
	log.printf("loaded %d modules in %s; slot %s, root partition %d of disk %08x", n, time.Since(start).Round(time.Millisecond), cl.Slot, cl.RootPart, cl.Signature)
	wd := armWatchdog(log)

	root, err := waitRoot(log, func() (Block, error) {
		return FindPartition("/sys/class/block", "/dev", cl.Signature, cl.RootPart)
	}, time.Now, time.Sleep)
	if err != nil {
		return err
	}
	_ = os.MkdirAll(newRoot, 0o755)
	if err := unix.Mount("/dev/"+root.Name, newRoot, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount root %s: %w", root.Name, err)
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := unix.Mount(d, newRoot+d, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s into the root: %w", d, err)
		}
	}
	// Free the initramfs: its files are no longer needed.
	_ = os.RemoveAll("/lib")
	_ = os.Remove("/init")
	// Switch now, so every mount below records the paths the running system
	// sees (systemd remounts them at shutdown with those options).
	if err := os.Chdir(newRoot); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	_ = os.Chdir("/")
	if err := prepareData(log, root); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	handOver(wd, log)
	log.printf("switching to %s after %s", cl.Init, time.Since(start).Round(time.Millisecond))
	return syscall.Exec(cl.Init, []string{cl.Init}, os.Environ())
}

// waitRoot calls find until it returns the root partition. A disk that is
// not there waits 30 s for it to appear (modules still probing). Two disks
// with the image's signature wait, nothing mounted or written, until all
// but one are gone, with the reason on the console every 10 s: rebooting
// instead would only spend the boot loader's tries and find both again.
func waitRoot(log initLog, find func() (Block, error), now func() time.Time, sleep func(time.Duration)) (Block, error) {
	deadline := now().Add(30 * time.Second)
	var told time.Time
	for {
		b, err := find()
		switch {
		case err == nil:
			return b, nil
		case errors.Is(err, ErrAmbiguous):
			if now().Sub(told) >= 10*time.Second {
				log.alertf("cannot tell which disk this system booted from: %v", err)
				told = now()
			}
			deadline = now().Add(30 * time.Second)
		case now().After(deadline):
			return Block{}, fmt.Errorf("root device: %w after 30 s", err)
		}
		sleep(50 * time.Millisecond)
	}
}

// loadModules loads the modules listed (one path per line, dependencies
// first). Compressed modules are handed to the kernel as they are.
func loadModules(list string) (int, error) {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		m, err := os.Open(filepath.Join(filepath.Dir(list), p))
		if err != nil {
			return n, fmt.Errorf("module %s: %w", p, err)
		}
		flags := 0
		if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
			flags = unix.MODULE_INIT_COMPRESSED_FILE
		}
		err = unix.FinitModule(int(m.Fd()), "", flags)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return n, fmt.Errorf("load module %s: %w", p, err)
		}
		n++
	}
	return n, sc.Err()
}

// prepareData grows, formats if needed and mounts the data partition, then
// puts writable overlays on /etc and /var.
func prepareData(log initLog, root Block) error {
	data, err := Sibling("/sys/class/block", root, dataPart)
	if err != nil {
		return err
	}
	diskDev, dataDev := "/dev/"+root.Disk, "/dev/"+data.Name
	if err := growData(log, diskDev, data); err != nil {
		return fmt.Errorf("grow data partition: %w", err)
	}
	partBytes, err := blockSize(dataDev)
	if err != nil {
		return err
	}
	fsBytes := func() int64 {
		f, err := os.Open(dataDev)
		if err != nil {
			return 0
		}
		defer f.Close()
		return Ext4Size(f)
	}
	switch size := fsBytes(); {
	case size == 0:
		log.printf("first boot: creating the data filesystem on %s (%d MiB)", data.Name, partBytes>>20)
		if err := run("/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-L", "data", dataDev); err != nil {
			return fmt.Errorf("mke2fs: %w", err)
		}
	case size < partBytes-(4<<20):
		log.printf("growing the data filesystem from %d to %d MiB", size>>20, partBytes>>20)
		_ = run("/sbin/e2fsck", "-fy", dataDev)
		if err := run("/sbin/resize2fs", dataDev); err != nil {
			return fmt.Errorf("resize2fs: %w", err)
		}
	}
	mnt := DataMount
	if err := unix.Mount(dataDev, mnt, "ext4", unix.MS_NOATIME, ""); err != nil {
		return fmt.Errorf("mount data %s: %w", data.Name, err)
	}
	for _, d := range Overlaid {
		upper := filepath.Join(mnt, OverlayDir, d, "upper")
		work := filepath.Join(mnt, OverlayDir, d, "work")
		for _, p := range []string{upper, work} {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		}
		if d == "etc" {
			// Before the mount: the release's /etc changes apply (etc.go).
			r := EtcReconcile{List: etcsum.Path, Lower: "/etc", Release: "/etc/pibake/release", Upper: upper, Dir: filepath.Dir(upper), Log: log.printf}
			if err := r.Run(); err != nil {
				log.printf("reconciling /etc with the release: %v", err)
			}
		}
		lower := "/" + d
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
		if err := unix.Mount("overlay", lower, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay /%s: %w", d, err)
		}
	}
	return nil
}

func growData(log initLog, diskDev string, data Block) error {
	disk, err := os.OpenFile(diskDev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer disk.Close()
	size, err := blockSize(diskDev)
	if err != nil {
		return err
	}
	start, sectors, changed, err := GrowLast(disk, disk, uint64(size/512))
	if err != nil || !changed {
		return err
	}
	if err := disk.Sync(); err != nil {
		return err
	}
	log.printf("grew partition %d to %d MiB", data.Num, sectors>>11)
	// Tell the kernel; the disk is busy (root is mounted), so resize in place.
	p := unix.BlkpgPartition{Start: int64(start) * 512, Length: int64(sectors) * 512, Pno: int32(data.Num)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(p)), Data: (*byte)(unsafe.Pointer(&p))}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, disk.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return fmt.Errorf("BLKPG resize: %w", e)
	}
	return nil
}

func blockSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	return n, nil
}

// run runs a program of the root filesystem (after the switch).
func run(prog string, args ...string) error {
	cmd := exec.Command(prog, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
