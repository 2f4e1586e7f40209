package channel

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func doc(serial uint64) *Document {
	sum := strings.Repeat("ab", 32)
	return &Document{Format: Format, Channel: "stable", Image: "demo", Version: "1.2.0", Serial: serial,
		Expires: now.Add(24 * time.Hour), Boards: []string{"pi4", "qemu"}, Rollout: 1,
		Artifacts: []Artifact{{Name: "boot", Path: BlobPath(sum), Size: 100, SHA256: sum, PartitionSize: 4096}}}
}

func TestSignVerify(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, otherPriv, _ := minisign.GenerateKey(rand.Reader)
	d, s, err := Sign(doc(7), priv)
	if err != nil {
		t.Fatal(err)
	}
	ok := Check{Trusted: []minisign.PublicKey{other, pub}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 6}
	got, err := Verify(d, s, ok)
	if err != nil || got.Serial != 7 || got.Version != "1.2.0" {
		t.Fatalf("verify: %+v %v", got, err)
	}

	tampered := bytes.Replace(d, []byte(`"1.2.0"`), []byte(`"6.6.6"`), 1)
	otherDoc, otherSig, _ := Sign(doc(7), otherPriv)
	s8doc, s8sig, _ := Sign(doc(8), priv)
	beta := doc(9)
	beta.Channel = "beta"
	betaDoc, betaSig, _ := Sign(beta, priv)
	farDoc, farSig, _ := Sign(doc(6+MaxSerialJump+1), priv)
	topDoc, topSig, _ := Sign(doc(math.MaxUint64), priv)
	cases := []struct {
		name     string
		doc, sig []byte
		check    Check
		want     error
	}{
		{"tampered document", tampered, s, ok, ErrSignature},
		{"tampered signature", d, bytes.Replace(s, []byte("\n"), []byte("\nx"), 1), ok, ErrSignature},
		{"signature of another document", s8doc, s, ok, ErrSignature},
		{"unknown key", otherDoc, otherSig, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now}, ErrUnknownKey},
		{"no keys", d, s, Check{Board: "pi4", Channel: "stable", Now: now}, ErrUnknownKey},
		{"wrong board", d, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi3", Channel: "stable", Now: now}, ErrBoardMismatch},
		{"expired", d, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now.Add(25 * time.Hour)}, ErrExpired},
		{"downgrade", d, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 8}, ErrDowngrade},
		{"replay", d, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 7}, ErrReplay},
		{"too large", append(bytes.Clone(d), make([]byte, MaxSize)...), s, ok, ErrMalformed},
		// A genuinely signed document of another channel or image, served
		// under this channel's name.
		{"another channel", betaDoc, betaSig, ok, ErrWrongChannel},
		{"another image", d, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Image: "kiosk", Now: now}, ErrWrongChannel},
		{"serial far ahead", farDoc, farSig, ok, ErrSerialJump},
		{"serial at the top", topDoc, topSig, ok, ErrSerialJump},
		{"revoked key", d, s, Check{Trusted: []minisign.PublicKey{pub}, Revoked: []uint64{pub.ID()}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 6}, ErrRevokedKey},
	}
	for _, c := range cases {
		if _, err := Verify(c.doc, c.sig, c.check); !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Verify(s8doc, s8sig, ok); err != nil {
		t.Errorf("a newer serial is refused: %v", err)
	}
	if _, err := Verify(s8doc, s8sig, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Image: "demo", Now: now, LastSerial: 8, Reinstall: true}); err != nil {
		t.Errorf("a reinstall of the committed serial is refused: %v", err)
	}
	if _, err := Verify(farDoc, farSig, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now, LastSerial: 7}); err != nil {
		t.Errorf("a serial MaxSerialJump ahead is refused: %v", err)
	}
}

func TestValidate(t *testing.T) {
	_, priv, _ := minisign.GenerateKey(rand.Reader)
	for name, mut := range map[string]func(d *Document){
		"no serial":    func(d *Document) { d.Serial = 0 },
		"no boards":    func(d *Document) { d.Boards = nil },
		"rollout 0":    func(d *Document) { d.Rollout = 0 },
		"rollout 2":    func(d *Document) { d.Rollout = 2 },
		"bad path":     func(d *Document) { d.Artifacts[0].Path = "../etc/passwd" },
		"bad sha":      func(d *Document) { d.Artifacts[0].SHA256 = "xyz" },
		"too big":      func(d *Document) { d.Artifacts[0].PartitionSize = 10 },
		"no expiry":    func(d *Document) { d.Expires = time.Time{} },
		"duplicate":    func(d *Document) { d.Artifacts = append(d.Artifacts, d.Artifacts[0]) },
		"format":       func(d *Document) { d.Format = 99 },
		"channel name": func(d *Document) { d.Channel = "../x" },
	} {
		d := doc(1)
		mut(d)
		if _, _, err := Sign(d, priv); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: signed anyway (%v)", name, err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	for _, pw := range []string{"", "correct horse"} {
		name := "plain"
		if pw != "" {
			name = "secret"
		}
		pubPath, keyPath, err := GenerateKeyFiles(dir, name, pw)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := LoadPrivateKey(keyPath, pw)
		if err != nil {
			t.Fatal(err)
		}
		pubText, _ := os.ReadFile(pubPath)
		pub, err := ParsePublicKey(string(pubText))
		if err != nil {
			t.Fatal(err)
		}
		d, s, _ := Sign(doc(1), priv)
		if _, err := Verify(d, s, Check{Trusted: []minisign.PublicKey{pub}, Board: "pi4", Channel: "stable", Now: now}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, _, err := GenerateKeyFiles(dir, name, pw); err == nil {
			t.Errorf("%s: overwrote an existing key", name)
		}
		if st, _ := os.Stat(keyPath); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: key mode %v", name, st.Mode())
		}
	}
	if _, err := LoadPrivateKey(dir+"/secret.key", ""); err == nil {
		t.Error("encrypted key loaded without a password")
	}
	if _, err := LoadPrivateKey(dir+"/secret.key", "wrong"); err == nil {
		t.Error("encrypted key loaded with a wrong password")
	}
}
