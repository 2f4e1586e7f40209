package install

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pibake/pibake/updater/channel"
)

// FuzzOpenBundle: a bundle file from a USB stick is indexed or refused;
// what it serves stays inside the file.
func FuzzOpenBundle(f *testing.F) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range []string{channel.DocumentPath("stable"), channel.SignaturePath(channel.DocumentPath("stable")), channel.BlobPath("ab")} {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 3, Typeflag: tar.TypeReg})
		tw.Write([]byte("abc"))
	}
	tw.Close()
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:700])
	f.Add([]byte("not a tar"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "b.tar")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		bd, err := OpenBundle(p)
		if err != nil {
			return
		}
		for _, ch := range bd.Channels() {
			r, err := bd.Open(context.Background(), channel.DocumentPath(ch), 0)
			if err != nil {
				continue
			}
			n, _ := io.Copy(io.Discard, r)
			r.Close()
			if n > int64(len(data)) {
				t.Fatalf("served %d bytes from a %d-byte bundle", n, len(data))
			}
		}
	})
}
