package debian

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// ExtractFiles returns the regular files of a .deb whose path (without the
// leading "./") satisfies want. It reads the data archive with dpkg-deb, on
// the build host: nothing of the package is run.
func ExtractFiles(ctx context.Context, deb string, want func(path string) bool) (map[string][]byte, error) {
	bin, err := LookTool("dpkg-deb", "dpkg")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "--fsys-tarfile", deb)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("extract %s: %w", deb, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(out)
	var rerr error
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			rerr = err
			break
		}
		p := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !want(p) {
			continue
		}
		if files[p], err = io.ReadAll(tr); err != nil {
			rerr = err
			break
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil && rerr == nil {
		rerr = fmt.Errorf("%w: %s", err, stderr.String())
	}
	if rerr != nil {
		return nil, fmt.Errorf("extract %s: %w", deb, rerr)
	}
	return files, nil
}
