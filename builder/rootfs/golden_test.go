package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// withRecords copies the tar at src to dst, adding PAX records to the
// entries named in add (extended attributes as GNU tar and mmdebstrap
// write them: "SCHILY.xattr." and the attribute's name).
func withRecords(t *testing.T, src, dst string, add map[string]map[string]string) {
	t.Helper()
	in, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(in)), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if recs, ok := add[h.Name]; ok {
			h.Format = tar.FormatPAX
			h.PAXRecords = map[string]string{}
			for k, v := range recs {
				h.PAXRecords[k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// acl is a POSIX ACL xattr's value (version 2, one user::rwx entry).
const acl = "\x02\x00\x00\x00\x01\x00\x07\x00\xff\xff\xff\xff"

// TestWriteGolden pins the exact bytes of the root filesystem tar for the
// test base with extended attributes on some entries (ACLs, which the
// transform drops, and others, which it keeps), a tree with its own, and
// PAX time records, which the transform drops too.
func TestWriteGolden(t *testing.T) {
	basePath, spec := setup(t)
	dir := t.TempDir()
	xbase := filepath.Join(dir, "xattr-base.tar")
	withRecords(t, basePath, xbase, map[string]map[string]string{
		"./usr/bin/true": {"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00", "atime": "1600000001.5"},
		"./var/lib/dpkg/": {
			"SCHILY.xattr.system.posix_acl_access":  acl,
			"SCHILY.xattr.system.posix_acl_default": acl,
			"SCHILY.xattr.user.pibake":              "kept",
			"ctime":                                 "1600000002",
		},
		"./etc/hostname": {"SCHILY.xattr.user.replaced": "the transform writes its own"},
	})
	// A tree with xattrs, an ACL, a hard link and sub-second times.
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	mt := time.Unix(1650000000, 123456789)
	for _, h := range []*tar.Header{
		{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.system.posix_acl_default": acl, "SCHILY.xattr.user.dir": "d"}},
		{Name: "app/run", Typeflag: tar.TypeReg, Mode: 0o755, Size: 4, ModTime: mt, Uname: "someone", Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.system.posix_acl_access": acl}},
		{Name: "app/again", Typeflag: tar.TypeLink, Linkname: "app/run", ModTime: time.Unix(1800000000, 0)},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte("run\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree.tar")
	if err := os.WriteFile(tree, tb.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	spec.Trees = []Tree{{Dest: "/opt/tree", Tar: tree}}
	for _, c := range []struct {
		name, base string
		spec       Spec
		want       string
	}{
		{"test base", basePath, Spec{Epoch: spec.Epoch, Hostname: spec.Hostname, Sources: spec.Sources}, "2e622fbb608f20b0e5465b79ec8ce3d725cffc58db604b36e7179b7c35c34504"},
		{"xattrs, overlays, users, units, a tree", xbase, spec, "a363c0aaa9fe551853ea8d887d5b5c5e8ccf655a8c16defee0078b4bab0ac697"},
	} {
		b, err := Scan(context.Background(), c.base)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if _, err := b.Write(context.Background(), c.spec, &out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if c.base == xbase {
			checkRecords(t, out.Bytes())
		}
		sum := sha256.Sum256(out.Bytes())
		if got := hex.EncodeToString(sum[:]); got != c.want {
			t.Errorf("%s: tar of %d bytes has sha256 %s, want %s", c.name, out.Len(), got, c.want)
		}
	}
}

// checkRecords checks which PAX records of the xattr base reached the
// image: extended attributes but ACLs, and no times.
func checkRecords(t *testing.T, img []byte) {
	t.Helper()
	m, _ := readTar(t, img)
	for k, want := range map[string]map[string]bool{
		"usr/bin/true":       {"SCHILY.xattr.security.capability": true, "atime": false},
		"var/lib/dpkg":       {"SCHILY.xattr.user.pibake": true, "SCHILY.xattr.system.posix_acl_access": false, "SCHILY.xattr.system.posix_acl_default": false, "ctime": false},
		"etc/hostname":       {"SCHILY.xattr.user.replaced": false},
		"opt/tree/app":       {"SCHILY.xattr.user.dir": true, "SCHILY.xattr.system.posix_acl_default": false},
		"opt/tree/app/run":   {"SCHILY.xattr.security.capability": true, "SCHILY.xattr.system.posix_acl_access": false},
		"opt/tree/app/again": {"SCHILY.xattr.security.capability": false},
	} {
		g, ok := m[k]
		if !ok {
			t.Errorf("%s: missing", k)
			continue
		}
		for rec, keep := range want {
			if _, ok := g.hdr.PAXRecords[rec]; ok != keep {
				t.Errorf("%s: record %s there: %v, want %v (records %q)", k, rec, ok, keep, g.hdr.PAXRecords)
			}
		}
	}
}
