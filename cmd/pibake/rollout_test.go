package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestRolloutCLI: publish in waves, then rollout status, halt, halt
// again, resume, each as the operator types it.
func TestRolloutCLI(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := runCmd("keygen", "--out", dir, "--name", "fleet"); err != nil {
		t.Fatal(err)
	}
	key, pubKey := filepath.Join(dir, "fleet.key"), filepath.Join(dir, "fleet.pub")
	repo := filepath.Join(dir, "repo")
	v1 := smallBuild(t, "1.0.0", "pi4", "root of 1.0.0")
	base := []string{"--repo", repo, "--channel", "stable"}
	for _, bad := range [][]string{
		{"--waves", "10%@1h", v1}, {"--waves", "50%@0h,10%@1h", v1}, {"--waves", "ten", v1},
		{"--waves", "10%@0h", "--rollout", "0.5", v1},
	} {
		if _, _, err := runCmd(append(append([]string{"publish", "--key", key}, base...), bad...)...); exitCode(err) != 2 {
			t.Errorf("publish %q: %v, want a usage error", bad, err)
		}
	}
	out, _, err := runCmd(append(append([]string{"publish", "--key", key}, base...), "--waves", "10%@0h,50%@24h,100%@72h", v1)...)
	if err != nil || !strings.Contains(out, "waves: 10% from ") {
		t.Fatalf("publish --waves: %v\n%s", err, out)
	}
	out, _, err = runCmd(append([]string{"rollout", "status", "--public-key", pubKey}, base...)...)
	if err != nil || !strings.Contains(out, "serial 1") || !strings.Contains(out, "rollout now: 10% of the devices") || !strings.Contains(out, "halted: no") {
		t.Fatalf("rollout status: %v\n%s", err, out)
	}
	out, _, err = runCmd(append([]string{"rollout", "halt", "--key", key}, base...)...)
	if err != nil || !strings.Contains(out, "signed channel stable serial 2 (halted)") || !strings.Contains(out, "halted: devices that have not committed t 1.0.0") {
		t.Fatalf("rollout halt: %v\n%s", err, out)
	}
	out, _, err = runCmd(append([]string{"rollout", "halt", "--key", key}, base...)...)
	if err != nil || !strings.Contains(out, "already halted: nothing signed") {
		t.Fatalf("second halt: %v\n%s", err, out)
	}
	out, _, err = runCmd(append([]string{"rollout", "status", "--json", "--key", key}, base...)...)
	var st rolloutState
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || !st.Document.Halted || st.Rollout != 0.1 || len(st.Document.Waves) != 3 {
		t.Fatalf("rollout status --json: %v\n%s", err, out)
	}
	out, _, err = runCmd(append([]string{"rollout", "resume", "--key", key}, base...)...)
	if err != nil || !strings.Contains(out, "serial 3 (resumed)") {
		t.Fatalf("rollout resume: %v\n%s", err, out)
	}
	for _, bad := range [][]string{
		{"rollout"}, {"rollout", "frobnicate"}, {"rollout", "halt", "--repo", repo, "--channel", "stable"},
		{"rollout", "halt", "--public-key", pubKey, "--repo", repo, "--channel", "stable"},
		{"rollout", "watch", "--key", key, "--repo", repo, "--channel", "stable", "--broker", "tcp://127.0.0.1:1"},
		{"rollout", "watch", "--key", key, "--repo", repo, "--channel", "stable", "--broker", "tcp://127.0.0.1:1", "--max-failure-rate", "200%"},
	} {
		if _, _, err := runCmd(bad...); exitCode(err) != 2 {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
	if _, _, err := runCmd("rollout", "status", "--public-key", pubKey, "--repo", repo, "--channel", "beta"); err == nil || !strings.Contains(err.Error(), "no release") {
		t.Errorf("status of an empty channel: %v", err)
	}
}
