package channel

import (
	"strings"
	"testing"
)

// TestRepoPaths pins the repository's file names: devices in the field
// and every published repository depend on them, so they never change.
func TestRepoPaths(t *testing.T) {
	sum := strings.Repeat("0f", 32)
	for got, want := range map[string]string{
		BlobPath(sum):                     "blobs/sha256/" + sum,
		DocumentPath("stable"):            "channels/stable.json",
		SignaturePath(DocumentPath("b")):  "channels/b.json.minisig",
		ChunksPath("stable"):              "channels/stable.chunks.json",
		SignaturePath(ChunksPath("beta")): "channels/beta.chunks.json.minisig",
		HistoryPath("stable"):             "channels/stable.history.json",
		CostPath("stable"):                "channels/stable.cost.json",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	for p, want := range map[string]bool{
		"blobs/sha256/" + sum:                      true,
		"blobs/sha256/" + strings.ToUpper(sum):     false,
		"blobs/sha256/" + sum[2:]:                  false,
		"blobs/sha256/" + sum + "/x":               false,
		"../blobs/sha256/" + sum:                   false,
		"blobs/sha512/" + sum:                      false,
		"x/blobs/sha256/" + sum:                    false,
		"blobs/sha256/../../etc/passwd" + sum[20:]: false,
	} {
		if IsBlobPath(p) != want {
			t.Errorf("IsBlobPath(%q) = %v, want %v", p, !want, want)
		}
	}
	for p, want := range map[string]string{
		"channels/stable.json":         "stable",
		"channels/stable.chunks.json":  "stable.chunks", // a bundle carries only documents: any .json counts
		"channels/stable.json.minisig": "",
		"channels/a/b.json":            "",
		"blobs/sha256/x.json":          "",
		"stable.json":                  "",
	} {
		got, ok := DocumentName(p)
		if got != want || ok != (want != "") {
			t.Errorf("DocumentName(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
}
