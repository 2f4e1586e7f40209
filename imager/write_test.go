package imager

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteKeepsOtherFiles: --out replaces only an earlier os_list; any
// other file there is the user's and stays.
func TestWriteKeepsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	list := []byte("{\n  \"os_list\": []\n}\n")
	precious := filepath.Join(dir, "index.json")
	if err := os.WriteFile(precious, []byte(`{"site": "the team's own page"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(precious, list); err == nil || !strings.Contains(err.Error(), "not an Imager repository") {
		t.Errorf("over another JSON file: %v", err)
	}
	if b, _ := os.ReadFile(precious); string(b) != `{"site": "the team's own page"}` {
		t.Errorf("the file was overwritten: %q", b)
	}
	if err := WriteFile(dir, list); err == nil {
		t.Error("a folder was accepted")
	}
	out := filepath.Join(dir, "os_list.json")
	for i := 0; i < 2; i++ { // the second replaces the first
		if err := WriteFile(out, list); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	if b, _ := os.ReadFile(out); string(b) != string(list) {
		t.Errorf("wrote %q", b)
	}
}
