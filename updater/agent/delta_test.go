package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/chunks"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/patch"
)

const deltaPart = 4 << 20

// release is 3 MiB per artifact: v1 random, every later version the same
// bytes with a 50 KiB stretch of its own in the middle.
func release(name, version string) []byte {
	if b, ok := releases.Load(name + " " + version); ok {
		return b.([]byte)
	}
	b := makeRelease(name, version)
	releases.Store(name+" "+version, b)
	return b
}

var releases sync.Map

func makeRelease(name, version string) []byte {
	seed := uint64(name[0])
	b := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	if version != "1.0" {
		copy(b[1<<20:], bytes.Repeat([]byte(name+" "+version+" "), 50<<10/8))
	}
	return b
}

// addChunks writes the chunk indexes of channel ch's current release and
// the signed chunk document, as publish does; with from, also a patch of
// each artifact from the bytes from[0] gives for its name, listed as made
// from those of from[1] if given (a publisher's bug, for the test).
func (r *repo) addChunks(t *testing.T, ch string, from ...func(name string) []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(r.dir, channel.DocumentPath(ch)))
	if err != nil {
		t.Fatal(err)
	}
	var d channel.Document
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	c := &channel.Chunks{Format: channel.ChunksFormat, Channel: d.Channel, Serial: d.Serial}
	for _, a := range d.Artifacts {
		f, _ := os.Open(filepath.Join(r.dir, a.Path))
		ix, err := chunks.Build(context.Background(), f, chunks.Default)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ix.MarshalBinary()
		sum := sha(b)
		os.WriteFile(filepath.Join(r.dir, channel.BlobPath(sum)), b, 0o644)
		c.Indexes = append(c.Indexes, channel.ChunkIndex{Artifact: a.SHA256, Path: channel.BlobPath(sum), Size: int64(len(b)), SHA256: sum})
		if len(from) == 0 {
			continue
		}
		pb := encodePatch(t, from[0](a.Name), filepath.Join(r.dir, a.Path), ix)
		ps := sha(pb)
		os.WriteFile(filepath.Join(r.dir, channel.BlobPath(ps)), pb, 0o644)
		claim := from[len(from)-1](a.Name)
		c.Patches = append(c.Patches, channel.PatchRef{Artifact: a.SHA256, From: sha(claim), FromSize: int64(len(claim)),
			Path: channel.BlobPath(ps), Size: int64(len(pb)), SHA256: ps})
	}
	doc, sig, err := channel.SignChunks(c, &d, r.key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.dir, channel.ChunksPath(ch)), doc, 0o644)
	os.WriteFile(filepath.Join(r.dir, channel.SignaturePath(channel.ChunksPath(ch))), sig, 0o644)
}

// encodePatch makes the patch from old to the artifact at path, once per
// pair (the power-cut campaign asks for the same one in every life).
func encodePatch(t *testing.T, old []byte, path string, ix *chunks.Index) []byte {
	key := "patch " + sha(old) + " " + ix.Hex()
	if b, ok := releases.Load(key); ok {
		return b.([]byte)
	}
	oix, _ := chunks.Build(context.Background(), bytes.NewReader(old), chunks.Default)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := patch.Encode(context.Background(), bytes.NewReader(old), oix, f, ix)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.MarshalBinary()
	releases.Store(key, b)
	return b
}

// counted serves a folder over HTTP and counts the body bytes it sends.
type counted struct {
	mu       sync.Mutex
	sent     int64
	noRanges bool
	// stale, when set, is served once for its path instead of the file:
	// a publish that replaced the signature but not yet the document.
	stalePath string
	stale     []byte
}

func (c *counted) serve(t *testing.T, dir string) string {
	fs := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.noRanges {
			r.Header.Del("Range")
		}
		c.mu.Lock()
		stale := c.stale != nil && r.URL.Path == "/"+c.stalePath
		body := c.stale
		if stale {
			c.stale = nil
		}
		c.mu.Unlock()
		if stale {
			(&countWriter{w, c}).Write(body)
			return
		}
		fs.ServeHTTP(&countWriter{w, c}, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type countWriter struct {
	http.ResponseWriter
	c *counted
}

func (w *countWriter) Write(b []byte) (int, error) {
	w.c.mu.Lock()
	w.c.sent += int64(len(b))
	w.c.mu.Unlock()
	return w.ResponseWriter.Write(b)
}

// TestDeltaUpdate: with a chunk document the device downloads what its
// running slot lacks; whatever goes wrong with the delta (rotten local
// bytes, a tampered chunk document, a server without ranges) it still
// ends with the verified release, downloading more.
func TestDeltaUpdate(t *testing.T) {
	const full = 2 * 3 << 20
	v1 := func(n string) []byte { return release(n, "1.0") }
	cases := []struct {
		name    string
		spoil   func(d *device, r *repo, c *counted)
		atMost  int64
		atLeast int64
		patch   []func(string) []byte // patches from these bytes (addChunks)
	}{
		// 2 × 57,600 bytes changed: the patches carry them, the two
		// signed documents and little else.
		{"patch", func(*device, *repo, *counted) {}, 2 * 60 << 10, 0, []func(string) []byte{v1}},
		{"patch, the running slot holds other bytes", func(d *device, _ *repo, _ *counted) {
			p := d.part(bootchain.A, "root")
			p.live[2<<20] ^= 1
			p.durable[2<<20] ^= 1
		}, full / 5, 0, []func(string) []byte{v1}},
		{"patch tampered on the server", func(_ *device, r *repo, _ *counted) {
			var c channel.Chunks
			b, _ := os.ReadFile(filepath.Join(r.dir, channel.ChunksPath("stable")))
			json.Unmarshal(b, &c)
			p := filepath.Join(r.dir, c.Patches[1].Path)
			pb, _ := os.ReadFile(p)
			pb[len(pb)-1] ^= 1
			os.WriteFile(p, pb, 0o644)
		}, full / 5, 0, []func(string) []byte{v1}},
		{"signed patch that makes other bytes", func(*device, *repo, *counted) {}, full / 5, 0, []func(string) []byte{func(n string) []byte {
			b := bytes.Clone(release(n, "1.0"))
			b[2<<20] ^= 1
			return b
		}, v1}},
		{"delta", func(*device, *repo, *counted) {}, full / 10, 0, nil},
		{"the running slot holds other bytes", func(d *device, _ *repo, _ *counted) {
			p := d.part(bootchain.A, "root")
			p.live[2<<20] ^= 1
			p.durable[2<<20] ^= 1
		}, full / 5, -1, nil}, // -1: a chunk (16 KiB at least) more than "delta"
		{"tampered chunk document", func(_ *device, r *repo, _ *counted) {
			p := filepath.Join(r.dir, channel.ChunksPath("stable"))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, bytes.Replace(b, []byte(`"serial": 2`), []byte(`"serial": 3`), 1), 0o644)
		}, 0, full, nil},
		// Read between a publish's two writes: its signature is new, the
		// chunk document still the one before. Read again, it is the
		// delta as usual, not a full download.
		{"torn chunk document and signature", func(_ *device, r *repo, c *counted) {
			c.stalePath = channel.ChunksPath("stable")
			c.stale = []byte(`{"format":1}`)
		}, full / 10, 0, nil},
		{"no chunk document", func(_ *device, r *repo, _ *counted) {
			os.Remove(filepath.Join(r.dir, channel.ChunksPath("stable")))
		}, 0, full, nil},
		{"server ignores ranges", func(_ *device, _ *repo, c *counted) { c.noRanges = true }, 0, full, nil},
	}
	var deltaSent int64
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			d := newDeviceWith(deltaPart, release)
			r.publishData(t, "stable", "1.0", func(n string) []byte { return release(n, "1.0") }, false)
			booted := d.boot.PowerOn()
			c := &counted{}
			url := c.serve(t, r.dir)
			a := d.agent(r, booted)
			a.Source = install.HTTP{Base: url}
			a.Running = func(s bootchain.Slot) (Readable, Readable, error) { return d.part(s, "boot"), d.part(s, "root"), nil }
			a.PeakRSS = func() int64 { return 42 << 20 }
			if err := a.AfterBoot(context.Background()); err != nil {
				t.Fatal(err)
			}
			r.publishData(t, "stable", "2.0", func(n string) []byte { return release(n, "2.0") }, false)
			if tc.patch != nil {
				r.addChunks(t, "stable", tc.patch...)
			} else {
				r.addChunks(t, "stable")
			}
			tc.spoil(d, r, c)
			c.sent = 0
			if err := a.Update(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !d.holds(bootchain.B, "2.0") {
				t.Fatal("slot B does not hold 2.0")
			}
			if tc.atLeast < 0 {
				tc.atLeast = deltaSent + 16<<10
			}
			deltaSent = c.sent
			if tc.atMost > 0 && c.sent > tc.atMost || c.sent < tc.atLeast {
				t.Errorf("the server sent %d bytes of a %d-byte release", c.sent, full)
			}
			st, _ := d.store.Load()
			if m := st.LastInstall; m == nil || m.Full != full || m.Downloaded+m.Reused < full || m.Downloaded > c.sent || m.PeakRSS != 42<<20 {
				t.Errorf("last install recorded as %+v (the server sent %d)", m, c.sent)
			}
			t.Logf("the server sent %d bytes of a %d-byte release", c.sent, full)
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestSquashfsLength: the running root is indexed only as far as its
// squashfs reaches; anything that is not a plausible superblock leaves
// the bound as it was.
func TestSquashfsLength(t *testing.T) {
	part := func(magic string, used uint64, size int) Readable {
		b := make([]byte, size)
		copy(b, magic)
		binary.LittleEndian.PutUint64(b[40:], used)
		return sizedReader{bytes.NewReader(b)}
	}
	for _, c := range []struct {
		name  string
		r     Readable
		want  int64
		found bool
	}{
		{"squashfs", part("hsqs", 10000, 1<<20), 12288, true},
		{"aligned", part("hsqs", 8192, 1<<20), 8192, true},
		{"not squashfs", part("xxxx", 10000, 1<<20), 0, false},
		{"longer than the partition", part("hsqs", 2<<20, 1<<20), 0, false},
		{"rounds past the end", part("hsqs", 1<<20-10, 1<<20-20), 0, false},
		{"empty", part("hsqs", 0, 4096), 0, false},
		{"huge", part("hsqs", 1<<63+5, 1<<20), 0, false},
	} {
		n, ok := squashfsLength(c.r)
		if n != c.want || ok != c.found {
			t.Errorf("%s: %d %v, want %d %v", c.name, n, ok, c.want, c.found)
		}
	}
}

type sizedReader struct{ *bytes.Reader }

func (s sizedReader) Size() int64 { return s.Reader.Size() }
