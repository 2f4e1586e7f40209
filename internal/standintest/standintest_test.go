package standintest

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/pibake/pibake/builder/debian"
	"github.com/pibake/pibake/internal/registrytest"
)

// TestRelock writes standin.lock again from the archives (on demand:
// STANDIN_RELOCK=1), keeping the lock's epoch.
func TestRelock(t *testing.T) {
	if os.Getenv("STANDIN_RELOCK") == "" {
		t.Skip("STANDIN_RELOCK=1 resolves the stand-in packages again")
	}
	epoch := int64(1767225600) // 2026-01-01
	if old, _, err := debian.ReadLock(LockFile()); err == nil {
		epoch = old.SourceDateEpoch
	}
	if err := Relock(context.Background(), epoch, slog.New(slog.NewTextHandler(os.Stderr, nil))); err != nil {
		t.Fatal(err)
	}
}

// TestLockCurrent: the checked-in lock matches the stand-ins' inputs.
func TestLockCurrent(t *testing.T) {
	def, err := edgeDefinition()
	if err != nil {
		t.Fatal(err)
	}
	lock, _, err := debian.ReadLock(LockFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Check(inputs(def), LockFile()); err != nil {
		t.Fatal(err)
	}
	for _, p := range Packages {
		if _, ok := lock.Find(p, debian.RoleRoot); !ok {
			t.Errorf("lock has no %s", p)
		}
	}
}

// TestBuildAndPush builds the stand-ins twice (same digests: they are
// reproducible) and pushes them to a real registry with a login, where
// they are arm64 images sharing one layer.
func TestBuildAndPush(t *testing.T) {
	if os.Getenv("PIBAKE_REAL") == "" && os.Getenv("PIBAKE_E2E") == "" {
		t.Skip("PIBAKE_REAL=1 bootstraps the stand-in tree (minutes on the first run, then cached)")
	}
	ctx := context.Background()
	a, err := Build(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.Start(t)
	pushed := Push(t, reg, reg.Host)
	for _, im := range Images {
		da, _ := a[im.Name].Digest()
		db, _ := b[im.Name].Digest()
		if da != db || pushed[im.Name].Digest != da.String() {
			t.Errorf("%s: digests %s, %s, pushed %s: not reproducible", im.Name, da, db, pushed[im.Name].Digest)
		}
		ref, err := name.ParseReference(pushed[im.Name].Ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithTransport(reg.Transport()), remote.WithAuth(reg.Auth()))
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := img.Layers()
		size, _ := ls[0].Size()
		t.Logf("%s: %s/%s, %d layer(s), %d bytes compressed, cmd %q", ref, cf.OS, cf.Architecture, len(ls), size, cf.Config.Cmd)
		if cf.Architecture != "arm64" || len(ls) != 1 {
			t.Errorf("%s: %s with %d layers, want arm64 with one", ref, cf.Architecture, len(ls))
		}
	}
}
