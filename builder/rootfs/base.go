package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/pibake/pibake/builder/debian"
)

type baseInfo struct {
	paths    map[string]bool
	dirs     map[string]bool
	symlinks map[string]string // path -> target
	accounts *accounts
}

// scanBase reads what the transform needs from the base: the account
// files, the dpkg status, the kernel and its device trees, and the set of paths.
func scanBase(ctx context.Context, baseTar string) (*baseInfo, *Result, error) {
	f, err := os.Open(baseTar)
	if err != nil {
		return nil, nil, fmt.Errorf("rootfs: open base: %w", err)
	}
	defer f.Close()
	b := &baseInfo{paths: map[string]bool{}, dirs: map[string]bool{}, symlinks: map[string]string{}}
	res := &Result{DTBs: map[string][]byte{}}
	kf := kernelFiles{}
	wanted := map[string]bool{"etc/passwd": true, "etc/group": true, "etc/shadow": true, "etc/gshadow": true, "var/lib/dpkg/status": true}
	small := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("rootfs: read base %s: %w", baseTar, err)
		}
		k := key(h.Name)
		b.paths[k] = true
		switch h.Typeflag {
		case tar.TypeDir:
			b.dirs[k] = true
		case tar.TypeSymlink:
			b.symlinks[k] = h.Linkname
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		read := func() ([]byte, error) { return io.ReadAll(tr) }
		switch {
		case wanted[k]:
			if small[k], err = read(); err != nil {
				return nil, nil, fmt.Errorf("rootfs: read %s: %w", k, err)
			}
		case strings.HasPrefix(k, "usr/lib/modules/") && (strings.HasSuffix(k, "/modules.dep") || strings.HasSuffix(k, "/modules.builtin") || strings.HasSuffix(k, "/modules.alias")):
			data, err := read()
			if err != nil {
				return nil, nil, fmt.Errorf("rootfs: read %s: %w", k, err)
			}
			switch path.Ext(k) {
			case ".dep":
				res.ModulesDep = data
			case ".alias":
				res.ModulesAlias = data
			default:
				res.ModulesBuiltin = data
			}
		default:
			if err := kf.add(k, read); err != nil {
				return nil, nil, err
			}
		}
	}
	b.accounts = &accounts{passwd: parseDB(small["etc/passwd"]), group: parseDB(small["etc/group"]),
		shadow: parseDB(small["etc/shadow"]), gshadow: parseDB(small["etc/gshadow"])}
	status := small["var/lib/dpkg/status"]
	if len(status) == 0 {
		return nil, nil, fmt.Errorf("rootfs: base %s has no /var/lib/dpkg/status: not a Debian root filesystem", baseTar)
	}
	st, err := debian.ParseControl(bytes.NewReader(status))
	if err != nil {
		return nil, nil, fmt.Errorf("rootfs: dpkg status: %w", err)
	}
	for _, s := range st {
		if strings.HasSuffix(s.Get("Status"), " installed") {
			res.Packages = append(res.Packages, Package{Name: s.Get("Package"), Version: s.Get("Version"), Arch: s.Get("Architecture")})
		}
	}
	sort.Slice(res.Packages, func(i, j int) bool { return res.Packages[i].Name < res.Packages[j].Name })
	if err := kf.pick(res); err != nil {
		return nil, nil, err
	}
	return b, res, nil
}

// ReadFiles reads regular files of the base by path (relative, no leading
// "/"); missing ones are an error.
func (b *Base) ReadFiles(ctx context.Context, paths []string) (map[string][]byte, error) {
	want := map[string]bool{}
	for _, p := range paths {
		want[p] = true
	}
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for len(out) < len(want) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rootfs: read base: %w", err)
		}
		if k := key(h.Name); want[k] && h.Typeflag == tar.TypeReg {
			if out[k], err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("rootfs: read %s: %w", k, err)
			}
		}
	}
	for _, p := range paths {
		if _, ok := out[p]; !ok {
			return nil, fmt.Errorf("rootfs: the base has no file /%s", p)
		}
	}
	return out, nil
}

// Has reports whether the base has an entry at path (relative).
func (b *Base) Has(path string) bool { return b.info.paths[path] }
