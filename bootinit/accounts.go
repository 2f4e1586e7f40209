package bootinit

// The account databases under /etc (passwd, group, shadow, gshadow) are
// both the release's (its system users, the definition's users) and the
// device's (a provisioned password, a user made on the device): when a
// release changes one, the device's copy is merged into the release's
// instead of being set aside.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pibake/pibake/internal/atomicfile"
)

// under reports whether p is one of paths or inside one of them.
func under(p string, paths []string) bool {
	for _, q := range paths {
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// regular reports whether the upper layer's p is a regular file.
func (r EtcReconcile) regular(p string) bool {
	fi, err := os.Lstat(filepath.Join(r.Upper, p))
	return err == nil && fi.Mode().IsRegular()
}

// merge writes into the upper layer the release's p merged with the
// device's copy, which setAside has just moved to local; the merged file
// takes the copy's mode and owner.
func (r EtcReconcile) merge(p, local string) error {
	mine, err := os.ReadFile(local)
	if err != nil {
		return fmt.Errorf("merge /etc/%s: %w", p, err)
	}
	release, err := os.ReadFile(filepath.Join(r.Lower, p))
	if err != nil {
		r.Log("/etc/%s: the release has none to merge with: the data partition's copy stays set aside", p)
		return nil
	}
	fi, err := os.Stat(local)
	if err != nil {
		return fmt.Errorf("merge /etc/%s: %w", p, err)
	}
	dest := filepath.Join(r.Upper, p)
	if err := atomicfile.Write(dest, mergeAccounts(release, mine), fi.Mode().Perm()); err != nil {
		return fmt.Errorf("merge /etc/%s: %w", p, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(dest, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("merge /etc/%s: %w", p, err)
		}
	}
	if err := os.Chmod(dest, fi.Mode().Perm()); err != nil {
		return fmt.Errorf("merge /etc/%s: %w", p, err)
	}
	r.Log("/etc/%s: this release changed it: the data partition's entries are merged into the release's (the copy before is in %s)", p, local)
	return nil
}

// mergeAccounts merges two colon-separated account databases keyed by
// their first field: the release's lines in its order, each replaced by
// the device's line of the same name, then the device's lines for names
// the release does not have, in the device's order.
func mergeAccounts(release, device []byte) []byte {
	name := func(line string) string {
		n, _, ok := strings.Cut(line, ":")
		if !ok || n == "" || strings.HasPrefix(n, "#") {
			return ""
		}
		return n
	}
	mine := map[string]string{}
	var order []string
	for _, l := range strings.Split(string(device), "\n") {
		if n := name(l); n != "" {
			if _, seen := mine[n]; !seen {
				order = append(order, n)
			}
			mine[n] = l
		}
	}
	var out bytes.Buffer
	used := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(string(release), "\n"), "\n") {
		if n := name(l); n != "" && mine[n] != "" {
			l, used[n] = mine[n], true
		}
		out.WriteString(l + "\n")
	}
	for _, n := range order {
		if !used[n] {
			out.WriteString(mine[n] + "\n")
		}
	}
	return out.Bytes()
}
