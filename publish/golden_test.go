package publish

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/updater/channel"
)

var update = flag.Bool("update", false, "rewrite testdata/publish.golden")

// fixedKey is a minisign key made from a fixed seed, so that signatures,
// and with them every file publish writes, are the same on each run.
func fixedKey(t *testing.T) minisign.PrivateKey {
	t.Helper()
	seed := sha256.Sum256([]byte("pibake publish golden test"))
	// minisign's unencrypted secret key: algorithm, KDF none, hash,
	// salt and KDF limits (unused), key id, the ed25519 key, checksum.
	var b [158]byte
	binary.LittleEndian.PutUint16(b[0:], 0x6445) // "Ed"
	binary.LittleEndian.PutUint16(b[4:], 0x3242) // "B2"
	binary.LittleEndian.PutUint64(b[54:], 0x0123456789abcdef)
	copy(b[62:], ed25519.NewKeyFromSeed(seed[:]))
	var key minisign.PrivateKey
	if err := key.UnmarshalText([]byte("untrusted comment: golden\n" + base64.StdEncoding.EncodeToString(b[:]))); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestPublishGolden pins the bytes publish writes: after each step of a
// fixed sequence (a first release, an update, a re-publish of the same
// bytes, a tryboot channel, a refused publish, which has stored its
// blobs by then, one that starts the history again from the current
// release), every file of the
// repository with its mode and sha256, and what Publish returned.
func TestPublishGolden(t *testing.T) {
	key := fixedKey(t)
	repo := t.TempDir()
	ctx := context.Background()
	v1, v2 := fakeBuild(t, "1.0.0"), fakeBuild(t, "2.0.0")
	v3 := fakeBuild(t, "3.0.0")
	t1, t2 := fakeBuildWith(t, "1.0.0", "tryboot"), fakeBuildWith(t, "2.0.0", "tryboot")
	steps := []struct {
		name string
		o    Options
		prep func()
	}{
		{name: "stable 1.0.0", o: Options{Channel: "stable", Build: v1, Expires: 720 * time.Hour, Rollout: 1}},
		{name: "stable 2.0.0", o: Options{Channel: "stable", Build: v2, Expires: 720 * time.Hour, Rollout: 0.25}},
		{name: "stable 2.0.0 again", o: Options{Channel: "stable", Build: v2, Expires: time.Hour, Rollout: 1, History: 1, Force: true}},
		{name: "beta tryboot 1.0.0", o: Options{Channel: "beta", Build: t1, Expires: time.Hour, Rollout: 1, Force: true}},
		{name: "beta tryboot 2.0.0", o: Options{Channel: "beta", Build: t2, Expires: time.Hour, Rollout: 1, Force: true}},
		{name: "stable 3.0.0 over a damaged history", o: Options{Channel: "stable", Build: v3, Expires: time.Hour, Rollout: 1, Force: true},
			prep: func() {
				os.WriteFile(filepath.Join(repo, channel.HistoryPath("stable")), []byte(`{"format": 2}`), 0o644)
			}},
		{name: "stable 3.0.0 without a history", o: Options{Channel: "stable", Build: v3, Expires: time.Hour, Rollout: 1, Force: true},
			prep: func() { os.Remove(filepath.Join(repo, channel.HistoryPath("stable"))) }},
	}
	var out strings.Builder
	for _, s := range steps {
		if s.prep != nil {
			s.prep()
		}
		o := s.o
		o.Repo, o.Key, o.Now = repo, key, now
		res, err := Publish(ctx, o)
		fmt.Fprintf(&out, "## %s\n", s.name)
		if err != nil {
			fmt.Fprintf(&out, "error %s\n", strings.ReplaceAll(err.Error(), repo, "REPO"))
		} else {
			res.Document = nil // its bytes are in the repository
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "result %s\n", b)
		}
		err = filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(repo, path)
			fmt.Fprintf(&out, "%s %x %d %s\n", info.Mode(), sha256.Sum256(data), len(data), filepath.ToSlash(rel))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	golden := filepath.Join("testdata", "publish.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != string(want) {
		t.Errorf("publish wrote other bytes than %s (go test -run TestPublishGolden -update rewrites it, after review):\n%s", golden, lineDiff(string(want), got))
	}
}

// lineDiff lists the lines only one side has.
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range strings.Split(got, "\n") {
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	return b.String()
}
