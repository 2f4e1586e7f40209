package patch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestEncodeGolden pins the exact patch Encode makes for releases(), so a
// change to the encoder's choices shows up here, not only in its size.
func TestEncodeGolden(t *testing.T) {
	old, new := releases()
	p, err := Encode(context.Background(), bytes.NewReader(old), index(t, old), bytes.NewReader(new), index(t, new))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got, want := hex.EncodeToString(sum[:]), "6f455b600eb6fd2fe5efaf6482c763b0dcd58e4ba71607ccfae827f45901b31f"; got != want {
		t.Errorf("patch of %d bytes, %d ops has sha256 %s, want %s", len(b), len(opsOf(p)), got, want)
	}
}
