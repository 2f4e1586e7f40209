package channel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"aead.dev/minisign"
)

func chunksDoc(d *Document) *Chunks {
	sum := strings.Repeat("cd", 32)
	return &Chunks{Format: ChunksFormat, Channel: d.Channel, Serial: d.Serial,
		Indexes: []ChunkIndex{{Artifact: d.Artifacts[0].SHA256, Path: BlobPath(sum), Size: 116, SHA256: sum}}}
}

// TestChunks: a chunk document verifies only for the channel document of
// its channel and serial, signed by a trusted, unrevoked key.
func TestChunks(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	other, otherPriv, _ := minisign.GenerateKey(rand.Reader)
	d := doc(7)
	c, s, err := SignChunks(chunksDoc(d), d, priv)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyChunks(c, s, d, []minisign.PublicKey{other, pub}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ix, ok := got.For(d.Artifacts[0].SHA256); !ok || ix.Size != 116 {
		t.Fatalf("For: %+v %v", ix, ok)
	}
	trusted := []minisign.PublicKey{pub}
	d8 := doc(8)
	c8, s8, _ := SignChunks(chunksDoc(d8), d8, priv)
	oc, os, _ := SignChunks(chunksDoc(d), d, otherPriv)
	chDoc, chSig, _ := Sign(d, priv)
	unknown := chunksDoc(d)
	unknown.Indexes[0].Artifact = strings.Repeat("ee", 32)
	if _, _, err := SignChunks(unknown, d, priv); !errors.Is(err, ErrMalformed) {
		t.Errorf("signed an index of an unknown artifact: %v", err)
	}
	cases := []struct {
		name     string
		doc, sig []byte
		trusted  []minisign.PublicKey
		revoked  []uint64
		want     error
	}{
		{"tampered", bytes.Replace(c, []byte("116"), []byte("117"), 1), s, trusted, nil, ErrSignature},
		{"another serial's", c8, s8, trusted, nil, ErrMalformed},
		{"unknown key", oc, os, trusted, nil, ErrUnknownKey},
		{"revoked key", c, s, trusted, []uint64{pub.ID()}, ErrRevokedKey},
		{"the channel document itself", chDoc, chSig, trusted, nil, ErrMalformed},
		{"garbage", []byte("{"), s, trusted, nil, ErrSignature},
	}
	for _, tc := range cases {
		if _, err := VerifyChunks(tc.doc, tc.sig, d, tc.trusted, tc.revoked); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzVerifyChunks: whatever a server sends, VerifyChunks returns an
// error or a document signed by the key, for the channel document's
// channel and serial, naming only its artifacts.
func FuzzVerifyChunks(f *testing.F) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	d := doc(7)
	c, s, err := SignChunks(chunksDoc(d), d, priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c, s)
	f.Add(bytes.Replace(c, []byte("7"), []byte("8"), 1), s)
	f.Add([]byte("{}"), []byte(""))
	f.Fuzz(func(t *testing.T, doc, sig []byte) {
		got, err := VerifyChunks(doc, sig, d, []minisign.PublicKey{pub}, nil)
		if err != nil {
			return
		}
		if !minisign.Verify(pub, doc, sig) || got.validate(d) != nil || got.Serial != 7 {
			t.Fatalf("accepted %+v", got)
		}
	})
}
