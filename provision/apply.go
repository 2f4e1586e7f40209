package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/pibake/pibake/updater/config"
)

// Result says what Apply changed, so that the caller can tell the running
// system (set the host name, start wpa_supplicant, reload sshd).
type Result struct {
	Paths     []string // in the target root, as the device sees them
	Hostname  bool
	WiFi      bool
	SSHConfig bool
}

// change is one file (or symlink) to put in place.
type change struct {
	path     string // as the device sees it (/etc/hostname)
	data     []byte
	link     string // a symlink's target instead of data
	mode     os.FileMode
	uid, gid int
	// name is what messages call it when its path comes from the input
	// (a file under /data), "" to use the path.
	name string
}

// label is what messages and logs call the change.
func (c change) label() string {
	if c.name != "" {
		return c.name
	}
	return c.path
}

// renameFile is os.Rename; tests make it fail part-way through a commit.
var renameFile = os.Rename

// Apply validates s against the system in root (a directory: "/" on the
// device, a temporary folder in tests), then writes every file it sets,
// all or nothing: each file is staged next to its destination, then the
// stages are renamed into place, and a failure before the last rename
// puts back what was there.
func Apply(ctx context.Context, root string, s *Spec, log *slog.Logger) (Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var res Result
	if err := s.Validate(); err != nil {
		return res, err
	}
	changes, err := plan(root, s)
	if err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if err := commit(root, changes); err != nil {
		return res, err
	}
	for _, c := range changes {
		res.Paths = append(res.Paths, c.path)
		log.Info("provisioned", "path", c.label())
	}
	res.Hostname = s.Hostname != ""
	res.WiFi = s.WiFi != nil
	res.SSHConfig = s.SSHPasswordAuth != nil
	return res, nil
}

// plan checks s against the target and computes every file.
func plan(root string, s *Spec) ([]change, error) {
	var out []change
	in := func(p string) string { return filepath.Join(root, p) }
	acc, err := readAccounts(in("/etc/passwd"), in("/etc/group"))
	if err != nil && (len(s.Users) > 0 || len(s.Files) > 0) {
		return nil, err
	}
	if s.Hostname != "" {
		out = append(out, change{path: HostnamePath, data: []byte(s.Hostname + "\n"), mode: 0o644})
		if !s.KeepHosts {
			old, err := os.ReadFile(in(HostsPath))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("hostname: %w", err)
			}
			if len(old) == 0 {
				old = []byte("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n")
			}
			out = append(out, change{path: HostsPath, data: hostsWith(old, s.Hostname), mode: 0o644})
		}
	}
	if s.WiFi != nil {
		out = append(out, change{path: WPAPath, data: wpaConf(s.WiFi), mode: 0o600})
	}
	hashes, locks := map[string]string{}, map[string]bool{}
	for i, u := range s.Users {
		if _, ok := acc.users[u.Name]; !ok {
			return nil, fail(u.File, u.Line, field("users").at(i), fromImage("no such user in this image (it has ", acc.loginNames(), "); provisioning adds keys and passwords to existing users only: add the user to the image definition's users"))
		}
		if len(u.Keys) > 0 {
			// root-owned and world-readable: sshd's StrictModes accepts it
			// (it reads the file as the user), and the user cannot edit it.
			out = append(out, change{path: KeysDir + "/" + u.Name, data: []byte(strings.Join(u.Keys, "\n") + "\n"), mode: 0o644})
		}
		if u.PasswordHash != "" || u.Lock {
			hashes[u.Name], locks[u.Name] = u.PasswordHash, u.Lock
		}
	}
	if len(hashes) > 0 {
		c, err := shadowChange(in(ShadowPath), hashes, locks)
		if err != nil {
			return nil, err
		}
		if c.data != nil {
			out = append(out, c)
		}
	}
	if s.SSHPasswordAuth != nil {
		out = append(out, change{path: SSHDropIn, data: sshDropIn(*s.SSHPasswordAuth), mode: 0o644})
	}
	if s.TimeZone != "" {
		if m := checkZoneinfo(in(ZoneinfoDir), s.TimeZone); m != "" {
			return nil, fail(strings.Join(s.Sources, ", "), 0, "timezone", m)
		}
		out = append(out,
			change{path: LocaltimePath, link: "../usr/share/zoneinfo/" + s.TimeZone},
			change{path: TimezonePath, data: []byte(s.TimeZone + "\n"), mode: 0o644})
	}
	for i, f := range s.Files {
		at := field("files").at(i)
		uid, gid, m := acc.owner(f.Owner)
		if m != "" {
			return nil, fail(f.File, f.Line, at+".owner", m)
		}
		if m := checkUnder(root, DataDir, f.Path); m != "" {
			return nil, fail(f.File, f.Line, at+".path", m)
		}
		name := fmt.Sprintf("the file of %s (%s:%d)", at, f.File, f.Line)
		out = append(out, change{path: DataDir + "/" + f.Path, data: f.Data, mode: f.Mode, uid: uid, gid: gid, name: name})
	}
	if s.Updater != nil {
		c, err := updaterChange(root, s.Updater)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if s.Fleet != nil {
		c, err := fleetChange(s.Fleet)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	for _, c := range out {
		if st, err := os.Lstat(in(c.path)); err == nil && !st.Mode().IsRegular() && st.Mode()&fs.ModeSymlink == 0 {
			return nil, fmt.Errorf("%s exists and is not a file: remove it first", c.label())
		}
	}
	return out, nil
}

// shadowChange sets the users' hashes; a locked user's hash (the new one,
// or the current one) is stored behind '!'. Data is nil when nothing
// changes.
func shadowChange(path string, hashes map[string]string, locks map[string]bool) (change, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return change{}, fmt.Errorf("user password: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return change{}, fmt.Errorf("user password: %w", err)
	}
	cur := shadowHashes(old)
	set := map[string]string{}
	for u, h := range hashes {
		if h == "" {
			h = cur[u]
		}
		if locks[u] && !strings.HasPrefix(h, "!") && !strings.HasPrefix(h, "*") {
			h = "!" + h
		}
		set[u] = h
	}
	data, err := shadowWith(old, set)
	if err != nil {
		return change{}, fmt.Errorf("user password: %w", err)
	}
	if bytes.Equal(data, old) {
		return change{}, nil
	}
	sys := st.Sys().(*syscall.Stat_t)
	return change{path: ShadowPath, data: data, mode: st.Mode().Perm(), uid: int(sys.Uid), gid: int(sys.Gid)}, nil
}

func shadowHashes(data []byte) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Split(l, ":"); len(f) >= 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// checkZoneinfo: the zone must be a compiled zone file of the target's
// tzdata.
func checkZoneinfo(dir, tz string) msg {
	if _, err := os.Stat(dir); err != nil {
		return "the image has no " + ZoneinfoDir + ": add tzdata to the image definition's debian.packages (and run pibake lock), or leave timezone out (the device runs on UTC)"
	}
	f, err := os.Open(filepath.Join(dir, tz))
	if err != nil {
		return "not a zone of this image's tzdata (see " + ZoneinfoDir + ", or timedatectl list-timezones)"
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := f.Read(magic); err != nil || string(magic) != "TZif" {
		return "not a zone file of this image's tzdata"
	}
	return ""
}

// checkUnder refuses a path below base that goes through a symlink (it
// could point anywhere) or whose folders are not folders.
func checkUnder(root, base, rel string) msg {
	p := filepath.Join(root, base)
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		p = filepath.Join(p, c)
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		if err != nil {
			return "cannot be looked at on the data partition"
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			return "goes through a symlink on the data partition: refused (it could lead out of " + DataDir + ")"
		case i < len(parts)-1 && !st.IsDir():
			return "goes through a file that is not a folder on the data partition"
		case i == len(parts)-1 && !st.Mode().IsRegular():
			return "exists on the data partition and is not a file"
		}
	}
	return ""
}

// updaterChange renders the override and checks it as the agent will:
// merged with the image's configuration, by config.Load. What config.Load
// says of the override is not repeated (it quotes values): the message
// names what the image allows instead.
func updaterChange(root string, u *Updater) (change, error) {
	data, m := u.override()
	if m != "" {
		return change{}, fail(u.File, u.Line, "updater", m)
	}
	img := filepath.Join(root, ImageConfig)
	if _, err := os.Stat(img); err != nil {
		return change{}, fail(u.File, u.Line, "updater", "this image has no update agent ("+ImageConfig+"): leave updater out")
	}
	base, err := config.Load(img, "")
	if err != nil {
		return change{}, fmt.Errorf("the image's update agent configuration: %w", err)
	}
	if allowed := append([]string{base.Channel}, base.Channels...); u.Channel != "" && !slices.Contains(allowed, u.Channel) {
		return change{}, fail(u.File, u.Line, "updater.channel", fromImage("not one this image allows (", allowed, ")"))
	}
	tmp, err := os.CreateTemp("", "pibake-override-*.yaml")
	if err != nil {
		return change{}, err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return change{}, err
	}
	if _, err := config.Load(img, tmp.Name()); err != nil {
		return change{}, fail(u.File, u.Line, "updater", "the update agent refuses this override merged with the image's configuration")
	}
	return change{path: UpdaterOverride, data: data, mode: 0o644}, nil
}

// commit stages every change, then renames them into place; on a failure
// it restores the previous files and removes what it created.
func commit(root string, changes []change) (err error) {
	in := func(p string) string { return filepath.Join(root, p) }
	var createdDirs []string
	var staged []string
	backups := map[int]string{} // change index → saved previous file
	done := 0
	defer func() {
		if err == nil {
			return
		}
		for i := done - 1; i >= 0; i-- {
			dst := in(changes[i].path)
			if b, ok := backups[i]; ok {
				_ = os.Rename(b, dst)
			} else {
				_ = os.Remove(dst)
			}
		}
		for _, b := range backups {
			_ = os.Remove(b)
		}
		for _, t := range staged {
			_ = os.Remove(t)
		}
		for i := len(createdDirs) - 1; i >= 0; i-- {
			_ = os.Remove(createdDirs[i])
		}
	}()
	for _, c := range changes {
		dst := in(c.path)
		dirs, err := mkdirs(filepath.Dir(dst))
		createdDirs = append(createdDirs, dirs...)
		if err != nil {
			return fmt.Errorf("stage %s: %w", c.label(), osErr(err))
		}
		tmp := dst + ".pibake-new"
		if err := stage(tmp, c); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("stage %s: %w", c.label(), osErr(err))
		}
		staged = append(staged, tmp)
	}
	for i, c := range changes {
		dst := in(c.path)
		if _, err := os.Lstat(dst); err == nil {
			b := dst + ".pibake-old"
			_ = os.Remove(b)
			if err := os.Link(dst, b); err != nil {
				return fmt.Errorf("keep the previous %s: %w", c.label(), osErr(err))
			}
			backups[i] = b
		}
		if err := renameFile(dst+".pibake-new", dst); err != nil {
			return fmt.Errorf("put %s in place: %w (the previous files are back)", c.label(), osErr(err))
		}
		done = i + 1
	}
	staged = nil
	synced := map[string]bool{}
	for _, c := range changes {
		dir := filepath.Dir(in(c.path))
		if !synced[dir] {
			synced[dir] = true
			if err := syncDir(dir); err != nil {
				return fmt.Errorf("sync the folder of %s: %w", c.label(), osErr(err))
			}
		}
	}
	for _, b := range backups {
		_ = os.Remove(b)
	}
	return nil
}

// mkdirs creates dir and its missing parents (root-owned, 0755) and
// returns those it created, outermost first.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Lstat(d)
		if err == nil {
			if !st.IsDir() {
				return nil, &fs.PathError{Op: "mkdir", Path: d, Err: syscall.ENOTDIR}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append([]string{d}, missing...)
		if d == filepath.Dir(d) {
			break
		}
	}
	var made []string
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			return made, err
		}
		made = append(made, d)
		if err := os.Chmod(d, 0o755); err != nil {
			return made, err
		}
	}
	return made, nil
}

func stage(tmp string, c change) error {
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if c.link != "" {
		return os.Symlink(c.link, tmp)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(c.data)
	err = errors.Join(werr, f.Chown(c.uid, c.gid), f.Chmod(c.mode), f.Sync())
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
