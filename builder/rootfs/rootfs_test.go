package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pibake/pibake/internal/testbase"
)

type got struct {
	hdr  *tar.Header
	data string
}

func readTar(t *testing.T, b []byte) (map[string]got, []string) {
	t.Helper()
	m := map[string]got{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return m, order
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		k := key(h.Name)
		if _, dup := m[k]; dup {
			t.Errorf("duplicate entry %s", k)
		}
		m[k] = got{h, string(data)}
		order = append(order, k)
	}
}

func setup(t testing.TB) (string, Spec) {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.tar")
	if err := testbase.Write(base, []testbase.Package{{Name: "base-files", Version: "13.8", Arch: "arm64"}, {Name: "systemd", Version: "257.9-1", Arch: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "overlay")
	for p, mode := range map[string]os.FileMode{"etc/app/app.conf": 0o664, "etc/app/secret": 0o600, "usr/local/bin/tool": 0o775, "home/pi/.bashrc": 0o644} {
		full := filepath.Join(ov, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("app.conf", filepath.Join(ov, "etc/app/link")); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Epoch: 1700000000, Hostname: "box", Sources: []byte("deb http://mirror.example/debian trixie main\n"),
		Users: []User{{Name: "pi", Groups: []string{"adm"}, Shell: "/bin/bash", SSHKeys: []string{"ssh-ed25519 AAAA pi@x"}}},
		Overlays: []Overlay{{Name: "app", Dir: ov, Dest: "/", Owner: "root:root", Overrides: map[string]Override{
			"etc/app/secret": {Mode: 0o640, Owner: "pi:adm"},
		}}},
		Units: []Unit{{Name: "hello.service", Data: []byte("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlias=hi.service\n"), Enable: true}},
		Files: []File{{Path: "/etc/pibake/release", Data: []byte("PIBAKE_NAME=x\n"), Mode: 0o644}},
	}
	return base, spec
}

func TestWrite(t *testing.T) {
	basePath, spec := setup(t)
	base, err := Scan(context.Background(), basePath)
	if err != nil {
		t.Fatal(err)
	}
	if base.KernelVersion != testbase.KernelVersion || len(base.Kernel) != 3<<20 || len(base.DTBs) != len(testbase.DTBNames) || len(base.Packages) != 2 {
		t.Fatalf("scan: kernel %q (%d bytes), %d dtbs, %d packages", base.KernelVersion, len(base.Kernel), len(base.DTBs), len(base.Packages))
	}
	var out bytes.Buffer
	if _, err := base.Write(context.Background(), spec, &out); err != nil {
		t.Fatal(err)
	}
	m, order := readTar(t, out.Bytes())

	type want struct {
		typ      byte
		mode     int64
		uid, gid int
		data     string // substring
		link     string
	}
	checks := map[string]want{
		"etc/hostname":                     {typ: tar.TypeReg, mode: 0o644, data: "box\n"},
		"etc/hosts":                        {typ: tar.TypeReg, mode: 0o644, data: "127.0.1.1\tbox"},
		"etc/apt/sources.list":             {typ: tar.TypeReg, mode: 0o644, data: "deb http://mirror.example/debian trixie main"},
		"etc/passwd":                       {typ: tar.TypeReg, mode: 0o644, data: "pi:x:1000:1000::/home/pi:/bin/bash"},
		"etc/group":                        {typ: tar.TypeReg, mode: 0o644, data: "adm:x:4:pi"},
		"etc/shadow":                       {typ: tar.TypeReg, mode: 0o640, gid: 42, data: "pi:*:19675:"},
		"home/pi":                          {typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
		"home/pi/.ssh/authorized_keys":     {typ: tar.TypeReg, mode: 0o600, uid: 1000, gid: 1000, data: "ssh-ed25519 AAAA pi@x\n"},
		"etc/app/app.conf":                 {typ: tar.TypeReg, mode: 0o644, data: "etc/app/app.conf"},
		"etc/app/secret":                   {typ: tar.TypeReg, mode: 0o640, uid: 1000, gid: 4},
		"usr/local/bin/tool":               {typ: tar.TypeReg, mode: 0o755},
		"etc/app/link":                     {typ: tar.TypeSymlink, mode: 0o777, link: "app.conf"},
		"etc/systemd/system/hello.service": {typ: tar.TypeReg, mode: 0o644, data: "ExecStart"},
		"etc/systemd/system/multi-user.target.wants/hello.service": {typ: tar.TypeSymlink, mode: 0o777, link: "/etc/systemd/system/hello.service"},
		"etc/systemd/system/hi.service":                            {typ: tar.TypeSymlink, mode: 0o777, link: "/etc/systemd/system/hello.service"},
		"etc/pibake/release":                                       {typ: tar.TypeReg, mode: 0o644, data: "PIBAKE_NAME=x"},
		"usr/lib/systemd/systemd":                                  {typ: tar.TypeReg, mode: 0o755},
		"etc":                                                      {typ: tar.TypeDir, mode: 0o755},
		"tmp":                                                      {typ: tar.TypeDir, mode: 0o1777},
	}
	for p, w := range checks {
		g, ok := m[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		h := g.hdr
		if h.Typeflag != w.typ || h.Mode != w.mode || h.Uid != w.uid || h.Gid != w.gid || h.Linkname != w.link || !strings.Contains(g.data, w.data) {
			t.Errorf("%s: type %c mode %o owner %d:%d link %q data %q; want type %c mode %o owner %d:%d link %q data ~%q",
				p, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, g.data, w.typ, w.mode, w.uid, w.gid, w.link, w.data)
		}
		if h.ModTime.Unix() > spec.Epoch || !h.AccessTime.IsZero() || h.Uname != "" {
			t.Errorf("%s: not normalised: mtime %v atime %v uname %q", p, h.ModTime, h.AccessTime, h.Uname)
		}
	}
	for _, p := range []string{"tmp/pibake-repo-123", "run/leftover", "etc/ssh/ssh_host_ed25519_key", "boot/initrd.img-" + testbase.KernelVersion, "boot/vmlinuz-" + testbase.KernelVersion} {
		if _, ok := m[p]; ok {
			t.Errorf("%s should have been dropped", p)
		}
	}
	// Parents come before children.
	pos := map[string]int{}
	for i, k := range order {
		pos[k] = i
	}
	for k := range m {
		for _, p := range parents(k) {
			if i, ok := pos[p]; ok && i > pos[k] {
				t.Errorf("%s comes after its child %s", p, k)
			}
		}
	}

	// Same inputs, same bytes; Write can run twice on one Base.
	var again bytes.Buffer
	if _, err := base.Write(context.Background(), spec, &again); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(out.Bytes()) != sha256.Sum256(again.Bytes()) {
		t.Error("two writes of the same spec differ")
	}
}

func TestWriteErrors(t *testing.T) {
	basePath, spec := setup(t)
	base, err := Scan(context.Background(), basePath)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(s *Spec){
		"unknown group":  func(s *Spec) { s.Users[0].Groups = []string{"wheel"} },
		"unknown owner":  func(s *Spec) { s.Overlays[0].Owner = "nobody:nogroup" },
		"template unit":  func(s *Spec) { s.Units[0].Name = "x@.service" },
		"no install":     func(s *Spec) { s.Units[0].Data = []byte("[Service]\nExecStart=/bin/true\n") },
		"duplicate user": func(s *Spec) { s.Users = append(s.Users, User{Name: "daemon", Shell: "/bin/sh"}) },
		"through symlink": func(s *Spec) {
			s.Files = append(s.Files, File{Path: "/bin/extra", Data: []byte("x"), Mode: 0o755})
		},
		"dir to file": func(s *Spec) { s.Files = append(s.Files, File{Path: "/usr/lib", Data: []byte("x"), Mode: 0o644}) },
	}
	want := map[string]string{"unknown group": `group "wheel" does not exist`, "unknown owner": `"nobody" does not exist`,
		"template unit": "template", "no install": "no [Install]", "duplicate user": "already exists",
		"through symlink": "/bin is a symlink to usr/bin", "dir to file": "/usr/lib is a folder in the base"}
	for name, mut := range cases {
		s := spec
		s.Users = append([]User(nil), spec.Users...)
		s.Users[0].Groups = append([]string(nil), spec.Users[0].Groups...)
		s.Overlays = append([]Overlay(nil), spec.Overlays...)
		s.Units = append([]Unit(nil), spec.Units...)
		mut(&s)
		_, err := base.Write(context.Background(), s, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, want[name])
		}
	}
}

func TestEnableBase(t *testing.T) {
	base, _ := setup(t)
	b, err := Scan(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	files, err := b.EnableBase(context.Background(), []string{"systemd-networkd.service", "wpa_supplicant@wlan0.service", "systemd-resolved.service"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range files {
		got[f.Path] = f.Link
	}
	want := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service": "/usr/lib/systemd/system/systemd-networkd.service",
		"/etc/systemd/system/dbus-org.freedesktop.network1.service":            "/usr/lib/systemd/system/systemd-networkd.service",
		// Also= followed.
		"/etc/systemd/system/sockets.target.wants/systemd-networkd.socket": "/usr/lib/systemd/system/systemd-networkd.socket",
		// An instance, from its template, %i replaced.
		"/etc/systemd/system/multi-user.target.wants/wpa_supplicant@wlan0.service": "/usr/lib/systemd/system/wpa_supplicant@.service",
		"/etc/systemd/system/sysinit.target.wants/systemd-resolved.service":        "/usr/lib/systemd/system/systemd-resolved.service",
		"/etc/systemd/system/dbus-org.freedesktop.resolve1.service":                "/usr/lib/systemd/system/systemd-resolved.service",
	}
	if !maps.Equal(got, want) {
		t.Errorf("links:\n got %v\nwant %v", got, want)
	}
	if _, err := b.EnableBase(context.Background(), []string{"iwd.service"}); err == nil || !strings.Contains(err.Error(), "no file /usr/lib/systemd/system/iwd.service") {
		t.Errorf("a unit the base lacks: %v", err)
	}
}
