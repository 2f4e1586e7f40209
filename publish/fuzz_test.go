package publish

import (
	"testing"

	"github.com/pibake/pibake/updater/channel"
)

// FuzzReadHistory: the publisher's history file sits in a repository
// others may write (a shared bucket). Publish reads only a history its
// key signed, and parses even that strictly: any bytes give a history
// whose paths are all blobs, or an error; never a panic.
func FuzzReadHistory(f *testing.F) {
	f.Add([]byte(`{"format": 1, "channel": "stable", "releases": [{"serial": 2, "version": "1.0", "artifacts": [{"name": "root", "path": "` + channel.BlobPath("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") + `", "size": 10, "sha256": "x"}]}]}`))
	f.Add([]byte(`{"format": 1, "channel": "stable", "releases": [{"artifacts": [{"path": "../../etc/passwd", "size": 1}]}]}`))
	f.Add([]byte(`{"format": 2}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHistory(channel.HistoryPath("stable"), data, "stable")
		if err != nil {
			return
		}
		for _, r := range h.Releases {
			for _, a := range r.Artifacts {
				if !channel.IsBlobPath(a.Path) {
					t.Fatalf("accepted artifact path %q", a.Path)
				}
			}
			for _, ix := range r.Indexes {
				if !channel.IsBlobPath(ix.Path) {
					t.Fatalf("accepted index path %q", ix.Path)
				}
			}
		}
	})
}
