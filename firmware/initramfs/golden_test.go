package initramfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestCPIOGolden pins the exact bytes WriteCPIO produces: headers, name
// and data padding, folders made for missing parents, the trailer.
func TestCPIOGolden(t *testing.T) {
	entries := []Entry{
		{Path: "lib/modules/x/kernel/a.ko.xz", Mode: 0o644, Data: []byte("module a")},
		{Path: "init", Mode: 0o755, Data: []byte("#!init\x00odd")},
		{Path: "etc", Mode: 0o700, Dir: true},
		{Path: "/empty/", Mode: 0o600},
		{Path: "sbin/init", Link: true, Data: []byte("../init")},
	}
	var b bytes.Buffer
	if err := WriteCPIO(&b, entries, 1700000000); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b.Bytes())
	if got, want := hex.EncodeToString(sum[:]), "91311d226c01c94d55e7fd46038328467e39eed28421815da379031ceeb0e868"; got != want {
		t.Errorf("archive of %d bytes has sha256 %s, want %s", b.Len(), got, want)
	}
}
