package flash

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// host is where the kernel's view of disks is read: the zero value means
// /proc/self/mountinfo and /sys.
type host struct {
	mountinfo string
	sys       string
}

func (h host) paths() (string, string) {
	mi, sys := h.mountinfo, h.sys
	if mi == "" {
		mi = "/proc/self/mountinfo"
	}
	if sys == "" {
		sys = "/sys"
	}
	return mi, sys
}

// blockDev is a disk or partition as /sys/class/block shows it.
type blockDev struct {
	name string
	dir  string // its folder under /sys/devices
}

// lookup finds the sysfs folder of device number maj:min.
func (h host) lookup(maj, min uint32) (blockDev, error) {
	_, sys := h.paths()
	dir, err := filepath.EvalSymlinks(filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", maj, min)))
	if err != nil {
		return blockDev{}, err
	}
	return blockDev{name: filepath.Base(dir), dir: dir}, nil
}

func isPartition(d blockDev) bool {
	_, err := os.Stat(filepath.Join(d.dir, "partition"))
	return err == nil
}

// members lists the device numbers of disk d and its partitions.
func members(d blockDev) map[string]string {
	out := map[string]string{}
	if n, err := os.ReadFile(filepath.Join(d.dir, "dev")); err == nil {
		out[strings.TrimSpace(string(n))] = d.name
	}
	entries, _ := os.ReadDir(d.dir)
	for _, e := range entries {
		p := filepath.Join(d.dir, e.Name())
		if _, err := os.Stat(filepath.Join(p, "partition")); err != nil {
			continue
		}
		if n, err := os.ReadFile(filepath.Join(p, "dev")); err == nil {
			out[strings.TrimSpace(string(n))] = e.Name()
		}
	}
	return out
}

// disksUnder returns the whole disks that device maj:min lives on: its
// own disk for a partition, and through slaves/ for device-mapper, LVM
// or md devices.
func (h host) disksUnder(maj, min uint32, depth int) []string {
	d, err := h.lookup(maj, min)
	if err != nil || depth > 8 {
		return nil
	}
	if isPartition(d) {
		return []string{filepath.Base(filepath.Dir(d.dir))}
	}
	slaves, _ := os.ReadDir(filepath.Join(d.dir, "slaves"))
	if len(slaves) == 0 {
		return []string{d.name}
	}
	var out []string
	for _, s := range slaves {
		n, err := os.ReadFile(filepath.Join(d.dir, "slaves", s.Name(), "dev"))
		if err != nil {
			continue
		}
		if ma, mi, ok := parseDevNum(strings.TrimSpace(string(n))); ok {
			out = append(out, h.disksUnder(ma, mi, depth+1)...)
		}
	}
	return out
}

func parseDevNum(s string) (uint32, uint32, bool) {
	a, b, ok := strings.Cut(s, ":")
	ma, err1 := strconv.ParseUint(a, 10, 32)
	mi, err2 := strconv.ParseUint(b, 10, 32)
	return uint32(ma), uint32(mi), ok && err1 == nil && err2 == nil
}

// mount is one line of mountinfo.
type mount struct{ dev, point, source string }

func (h host) mounts() ([]mount, error) {
	mi, _ := h.paths()
	f, err := os.Open(mi)
	if err != nil {
		return nil, fmt.Errorf("flash: reading the mount table: %w", err)
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent maj:min root point options [optional...] - type source super
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := mount{dev: fields[2], point: unescape(fields[4])}
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				m.source = fields[i+2]
			}
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// check refuses a partition, a disk with anything mounted from it and,
// unless force, the disk that holds /.
func (h host) check(path string, st fs.FileInfo, force bool) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("flash: %s: no device number", path)
	}
	maj, min := unix.Major(uint64(sys.Rdev)), unix.Minor(uint64(sys.Rdev))
	d, err := h.lookup(maj, min)
	if err != nil {
		return fmt.Errorf("flash: %s (device %d:%d) is not in /sys/dev/block: %w", path, maj, min, err)
	}
	if isPartition(d) {
		return fmt.Errorf("flash: %s is partition %s of %s: %w; give the whole disk (/dev/%s)", path, d.name, filepath.Base(filepath.Dir(d.dir)), ErrNotDisk, filepath.Base(filepath.Dir(d.dir)))
	}
	mounts, err := h.mounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if m.point != "/" {
			continue
		}
		ma, mi, ok := parseDevNum(m.dev)
		if !ok {
			continue
		}
		for _, disk := range h.disksUnder(ma, mi, 0) {
			if disk == d.name && !force {
				return fmt.Errorf("flash: %s (%s) holds / of this system: %w; pass --force only if you mean to overwrite the running system's disk", path, d.name, ErrRootDisk)
			}
		}
	}
	parts := members(d)
	for _, m := range mounts {
		if name, ok := parts[m.dev]; ok {
			return fmt.Errorf("flash: %s: %s is mounted on %s: %w; unmount it first (umount %s)", path, name, m.point, ErrMounted, m.point)
		}
	}
	return nil
}

// openExclusive opens a block device for writing with O_EXCL, which the
// kernel refuses while a filesystem, swap, device-mapper or md holds the
// disk or one of its partitions.
func openExclusive(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("flash: %s is busy (a partition is mounted, used as swap or held by device-mapper or md): %w; stop what uses it first", path, ErrMounted)
	}
	if err != nil {
		return nil, fmt.Errorf("flash: %w", err)
	}
	return f, nil
}
