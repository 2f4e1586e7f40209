package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFile(t *testing.T) {
	f := File{Path: filepath.Join(t.TempDir(), "pibake", "updater.json")}
	st, err := f.Load()
	if err != nil || st.Format != Format || st.Trial != nil {
		t.Fatalf("empty: %+v %v", st, err)
	}
	st.LastSerial = 4
	st.Trial = &Trial{Slot: "b", Release: Release{Image: "demo", Version: "2.0", Serial: 4}, Since: time.Unix(1700000000, 0).UTC()}
	st.Failed = map[string]Failure{"1.9": {Version: "1.9", Stage: "health", Check: "unit x", Reason: "x is failed"}}
	if err := f.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := f.Load()
	if err != nil || got.LastSerial != 4 || got.Trial.Release.Version != "2.0" || got.Failed["1.9"].Check != "unit x" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.Path))
	if len(entries) != 1 {
		t.Errorf("left files behind: %v", entries)
	}
	os.WriteFile(f.Path, []byte("{half"), 0o644)
	if _, err := f.Load(); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt: %v", err)
	}
}
