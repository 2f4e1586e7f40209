package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProvisionCheckBoth: pibake-provision.yaml and cloud-init files on
// one card are refused by the device (provision.Run), so the check given
// both refuses them too.
func TestProvisionCheckBoth(t *testing.T) {
	dir := t.TempDir()
	own, ud := filepath.Join(dir, "pibake-provision.yaml"), filepath.Join(dir, "user-data")
	os.WriteFile(own, []byte("hostname: box-1\n"), 0o600)
	os.WriteFile(ud, []byte("#cloud-config\nhostname: kitchen\n"), 0o600)
	out, _, err := runCmd("provision", "check", own, ud)
	if err == nil || !strings.Contains(err.Error(), "keep one kind") {
		t.Errorf("both kinds: %v\n%s", err, out)
	}
	// Each alone is fine.
	for _, p := range []string{own, ud} {
		if _, _, err := runCmd("provision", "check", p); err != nil {
			t.Errorf("%s alone: %v", p, err)
		}
	}
}

// TestProvisionCheckJSON: --json says for each file whether it is fine,
// what is wrong and what is not applied.
func TestProvisionCheckJSON(t *testing.T) {
	dir := t.TempDir()
	good, bad, ud := filepath.Join(dir, "pibake-provision.yaml"), filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "user-data")
	os.WriteFile(good, []byte("hostname: box-1\n"), 0o600)
	os.WriteFile(bad, []byte("hostname: -bad-\n"), 0o600)
	os.WriteFile(ud, []byte("#cloud-config\nhostname: kitchen\nruncmd:\n  - [reboot]\n"), 0o600)
	out, _, err := runCmd("provision", "check", "--json", good, bad)
	if err == nil {
		t.Error("a bad file passed")
	}
	var res provisionReport
	if jerr := json.Unmarshal([]byte(out), &res); jerr != nil {
		t.Fatalf("not JSON (%v):\n%s", jerr, out)
	}
	if len(res.Checks) != 2 || !res.Checks[0].OK || res.Checks[1].OK || res.Checks[1].Error == "" || res.OK {
		t.Errorf("report %+v", res)
	}
	out, _, err = runCmd("provision", "check", "--json", ud)
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || !res.OK || len(res.Checks[0].NotApplied) != 1 {
		t.Errorf("user-data: %v %s", err, out)
	}
}
