// Package cachedir names the folder where pibake keeps what it downloads
// and builds once (Debian packages, bootstrapped bases, the emulated Pi's
// QEMU): outside any repository, shared by the builder and the VM runner.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// Default returns $PIBAKE_CACHE, else $XDG_CACHE_HOME/pibake, else
// ~/.cache/pibake.
func Default() (string, error) {
	if d := os.Getenv("PIBAKE_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache folder (set PIBAKE_CACHE): %w", err)
	}
	return filepath.Join(d, "pibake"), nil
}
