package system

import (
	"strings"
	"testing"
)

// TestProvisionFiles: every image carries the first-boot provisioning
// unit, enabled early and ordered before what reads its files; an image
// with sshd reads the keys it writes to /etc.
func TestProvisionFiles(t *testing.T) {
	byPath := map[string]File{}
	for _, f := range Files(3, true, true) {
		byPath[f.Path] = f
	}
	unit, ok := byPath["/usr/lib/systemd/system/pibake-provision.service"]
	if !ok || byPath["/etc/systemd/system/sysinit.target.wants/pibake-provision.service"].Link == "" {
		t.Fatal("the provisioning unit is not installed and enabled")
	}
	for _, want := range []string{"ExecStart=/usr/bin/pibake-updater provision", "StandardOutput=journal+console", "DefaultDependencies=no",
		"wpa_supplicant@wlan0.service", "systemd-networkd.service", "ssh.service", "pibake-updater.service"} {
		if !strings.Contains(string(unit.Data), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	if strings.Contains(string(unit.Data), "Requires=") || strings.Contains(string(unit.Data), "RequiredBy=") || strings.Contains(string(unit.Data), "FailureAction") {
		t.Error("a failed provisioning must not stop the boot or reboot")
	}
	if !strings.Contains(string(byPath[SSHDropIn].Data), "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys.d/%u") {
		t.Error("no sshd drop-in for the provisioned keys")
	}
	// Every image is provisioned, with or without the update service; the
	// keys drop-in only comes with sshd.
	plain := map[string]bool{}
	for _, f := range Files(3, false, false) {
		plain[f.Path] = true
		if f.Path == SSHDropIn {
			t.Errorf("%s without sshd", f.Path)
		}
	}
	if !plain["/usr/lib/systemd/system/pibake-provision.service"] || !plain["/etc/systemd/system/sysinit.target.wants/pibake-provision.service"] {
		t.Error("an image without the update service is not provisioned")
	}
}
