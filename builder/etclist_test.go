package builder

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pibake/pibake/bootinit"
	"github.com/pibake/pibake/builder/rootfs"
	"github.com/pibake/pibake/etcsum"
	"github.com/pibake/pibake/internal/testbase"
	"github.com/pibake/pibake/updater/config"
)

// TestEtcList: the list covers the base's /etc and what the image adds
// there, is the same bytes for the same inputs, and changes exactly where
// a release changes /etc.
func TestEtcList(t *testing.T) {
	tarPath := filepath.Join(t.TempDir(), "base.tar")
	if err := testbase.Write(tarPath, []testbase.Package{{Name: "systemd-sysv", Version: "257.9-1", Arch: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base, err := rootfs.Scan(ctx, tarPath)
	if err != nil {
		t.Fatal(err)
	}
	spec := rootfs.Spec{Epoch: 1796083200, Hostname: "demo", Files: []rootfs.File{
		{Path: "/etc/pibake/release", Data: []byte("PIBAKE_VERSION=1.0\n"), Mode: 0o644},
		{Path: "/etc/demo/motd", Data: []byte("hello\n"), Mode: 0o644},
		{Path: "/usr/lib/pibake/x", Data: []byte("not listed\n"), Mode: 0o644},
	}}
	one, err := etcList(ctx, base, spec)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := etcList(ctx, base, spec)
	if string(one) != string(again) {
		t.Fatal("the list is not reproducible")
	}
	l1, err := etcsum.Parse(one)
	if err != nil {
		t.Fatalf("the list does not parse: %v\n%s", err, one)
	}
	for _, p := range []string{"pibake/release", "demo/motd", "hostname", "passwd"} {
		if l1[p] == "" {
			t.Errorf("/etc/%s is not listed:\n%s", p, one)
		}
	}
	for p := range l1 {
		if !etcsum.Clean(p) {
			t.Errorf("listed %q", p)
		}
	}
	spec.Files[1].Data = []byte("hello again\n")
	spec.Files[0].Data = []byte("PIBAKE_VERSION=2.0\n")
	two, err := etcList(ctx, base, spec)
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := etcsum.Parse(two)
	if got := etcsum.Changed(l1, l2); len(got) != 2 || got[0] != "demo/motd" || got[1] != "pibake/release" {
		t.Errorf("changed between the releases: %v", got)
	}
}

// TestTrustAnchorsOutsideOverlays: the files the device trusts only from
// the image (the agent's configuration with its keys and health checks,
// the list of /etc) are in folders pibake-init never overlays with the
// data partition.
func TestTrustAnchorsOutsideOverlays(t *testing.T) {
	for _, p := range []string{config.ImagePath, etcsum.Path} {
		for _, d := range bootinit.Overlaid {
			if rel, err := filepath.Rel("/"+d, p); err == nil && filepath.IsLocal(rel) {
				t.Errorf("%s is under /%s, which the data partition overlays", p, d)
			}
		}
	}
}

func TestStaleBuilt(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if msg := staleBuilt(now.Add(-10*24*time.Hour).Unix(), now); msg != "" {
		t.Errorf("a 10-day-old epoch: %s", msg)
	}
	if msg := staleBuilt(now.Add(-90*24*time.Hour).Unix(), now); !strings.Contains(msg, "90 days ago") || !strings.Contains(msg, "SOURCE_DATE_EPOCH") {
		t.Errorf("a 90-day-old epoch: %q", msg)
	}
}
