//go:build ignore

// gen.go compiles the device programs into a folder for `make build` to
// embed: go run ./internal/deviceprog/gen.go -version V -out DIR, run
// from the checkout's top.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pibake/pibake/internal/deviceprog"
)

func main() {
	version := flag.String("version", "dev", "the pibake version being built")
	out := flag.String("out", "internal/deviceprog/programs", "folder to write the programs into")
	flag.Parse()
	if err := gen(*version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "deviceprog gen:", err)
		os.Exit(1)
	}
}

func gen(version, out string) error {
	src, err := deviceprog.FindCheckout(".")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	goVersion := ""
	for name, pkg := range deviceprog.Programs {
		if goVersion, err = deviceprog.Compile(context.Background(), src, pkg, filepath.Join(out, name)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(out, deviceprog.GoFile), []byte(goVersion+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, deviceprog.VersionFile), []byte(version+"\n"), 0o644)
}
