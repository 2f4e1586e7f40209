package channel

import (
	"bytes"
	"crypto/rand"
	"testing"

	"aead.dev/minisign"
)

// FuzzVerify: whatever a server sends as document and signature, Verify
// returns an error or a document that is valid and signed by the key.
func FuzzVerify(f *testing.F) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	d, s, err := Sign(doc(7), priv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d, s)
	f.Add(bytes.Replace(d, []byte("stable"), []byte("beta"), 1), s)
	f.Add(d, []byte("untrusted comment: x\nRWQ\n"))
	f.Add([]byte("{}"), []byte(""))
	for _, x := range []*Document{waved(), mixed()} {
		x.Serial, x.Halted = 8, true
		d, s, err := Sign(x, priv)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(d, s)
	}
	c := Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 6}
	f.Fuzz(func(t *testing.T, doc, sig []byte) {
		got, err := Verify(doc, sig, c)
		if err != nil {
			return
		}
		if !minisign.Verify(pub, doc, sig) || got.Validate() != nil || got.Channel != "stable" || got.Serial <= 6 || !got.Expires.After(now) ||
			len(got.ArtifactsFor("pi4")) == 0 || !(got.RolloutAt(now) > 0 && got.RolloutAt(now) <= 1) {
			t.Fatalf("accepted %+v", got)
		}
	})
}
