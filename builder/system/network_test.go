package system

import (
	"strings"
	"testing"
)

func TestNetworkFiles(t *testing.T) {
	byPath := func(fs []File) map[string]File {
		m := map[string]File{}
		for _, f := range fs {
			if _, dup := m[f.Path]; dup {
				t.Errorf("%s written twice", f.Path)
			}
			m[f.Path] = f
		}
		return m
	}
	def := byPath(NetworkFiles(Network{DHCP: true, WiFi: true}))
	wired := string(def["/usr/lib/systemd/network/80-pibake-wired.network"].Data)
	for _, want := range []string{"Type=ether\n", "Name=en* eth*\n", "DHCP=yes\n", "IPv6AcceptRA=yes\n"} {
		if !strings.Contains(wired, want) {
			t.Errorf("wired network lacks %q:\n%s", want, wired)
		}
	}
	if def["/etc/resolv.conf"].Link != "../run/systemd/resolve/stub-resolv.conf" {
		t.Error("resolv.conf is not resolved's stub")
	}
	if _, ok := def["/usr/lib/clock-epoch"]; !ok {
		t.Error("no clock-epoch: the clock could start before the build")
	}
	if !strings.Contains(string(def["/usr/lib/systemd/system/wpa_supplicant@wlan0.service.d/50-pibake.conf"].Data), "ConditionPathExists="+WiFiConfig) {
		t.Error("the supplicant would start without a configuration")
	}
	if def["/etc/systemd/system/sys-subsystem-net-devices-wlan0.device.wants/wpa_supplicant@wlan0.service"].Link != "/usr/lib/systemd/system/wpa_supplicant@.service" {
		t.Error("the supplicant is not started by the Wi-Fi device's arrival")
	}
	if _, ok := def["/usr/lib/systemd/timesyncd.conf.d/50-pibake.conf"]; ok {
		t.Error("a timesyncd drop-in without ntp servers")
	}
	wait := string(def["/usr/lib/systemd/system/systemd-networkd-wait-online.service.d/50-pibake.conf"].Data)
	if !strings.Contains(wait, "ExecStart=\nExecStart=-/usr/lib/systemd/systemd-networkd-wait-online --any --timeout=30\n") {
		t.Errorf("wait-online drop-in:\n%s", wait)
	}

	st := byPath(NetworkFiles(Network{Addresses: []string{"192.168.10.20/24", "2001:db8::20/64"}, Gateway: "192.168.10.1", DNS: []string{"192.168.10.1"}, NTP: []string{"ntp.lan", "10.0.0.1"}}))
	wired = string(st["/usr/lib/systemd/network/80-pibake-wired.network"].Data)
	for _, want := range []string{"DHCP=no\n", "Address=192.168.10.20/24\nAddress=2001:db8::20/64\n", "Gateway=192.168.10.1\n", "DNS=192.168.10.1\n", "NTP=ntp.lan\nNTP=10.0.0.1\n"} {
		if !strings.Contains(wired, want) {
			t.Errorf("static wired network lacks %q:\n%s", want, wired)
		}
	}
	if got := string(st["/usr/lib/systemd/timesyncd.conf.d/50-pibake.conf"].Data); got != "[Time]\nNTP=ntp.lan 10.0.0.1\n" {
		t.Errorf("timesyncd drop-in %q", got)
	}
	if _, ok := st["/usr/lib/systemd/network/80-pibake-wlan.network"]; ok {
		t.Error("Wi-Fi files in an image without Wi-Fi")
	}
	if u := NetworkUnits(Network{}); strings.Contains(strings.Join(u, " "), "wpa_supplicant") {
		t.Errorf("units %v enable the supplicant without Wi-Fi", u)
	}
}
