package deviceprog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Outside a checkout, a pibake without embedded programs says how to get
// them: make install, or --src.
func TestFindOutsideCheckout(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := Find("")
	if !errors.Is(err, ErrNoPrograms) {
		t.Fatalf("Find outside a checkout: %v, want ErrNoPrograms", err)
	}
	for _, want := range []string{"make install", "--src DIR", "docs/install.md"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := Find(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a pibake checkout") {
		t.Errorf("--src of an empty folder: %v", err)
	}
}

// A checkout found by walking up, or named, compiles the programs; the
// bytes do not depend on which path the checkout is reached by.
func TestCheckoutCompiles(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the device programs")
	}
	top, err := FindCheckout(".")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Find("")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Find(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if a.String() != "compiled from "+top || b.String() != a.String() {
		t.Errorf("sources %q and %q, want the checkout %s", a, b, top)
	}
	ctx := context.Background()
	pa, err := a.Program(ctx, Init, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pb, err := b.Program(ctx, Init, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if string(pa.Data) != string(pb.Data) || len(pa.Data) < 1<<20 || !strings.HasPrefix(pa.Go, "go1.") {
		t.Errorf("pibake-init: %d and %d bytes, go %q", len(pa.Data), len(pb.Data), pa.Go)
	}
	if _, err := a.Program(ctx, "sh", t.TempDir()); err == nil {
		t.Error("compiled a program that is not a device program")
	}
	if v := a.Version(ctx); v == "" {
		t.Error("no version")
	}
}

// The embedded folder's layout is what gen.go writes and Program reads.
func TestEmbeddedLayout(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{Init: "init", Updater: "agent", GoFile: "go1.26.8\n", VersionFile: "v1.2-3-gabc\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &Source{embedded: os.DirFS(dir)}
	ctx := context.Background()
	p, err := s.Program(ctx, Updater, t.TempDir())
	if err != nil || string(p.Data) != "agent" || p.Go != "go1.26.8" {
		t.Errorf("Program: %q %q %v", p.Data, p.Go, err)
	}
	if v := s.Version(ctx); v != "v1.2-3-gabc" || s.String() != "embedded in pibake" {
		t.Errorf("version %q, source %q", v, s)
	}
}
