package system

import (
	"fmt"
	"strconv"
	"strings"
)

// OnlineTimeout is how many seconds network-online.target waits for a
// link with an address.
const OnlineTimeout = 30

// Network is what the image's network section asks for (see
// imagedef.Network, docs/network.md).
type Network struct {
	DHCP      bool
	Addresses []string
	Gateway   string
	DNS       []string
	NTP       []string
	WiFi      bool
}

// WiFiInterface is the onboard Wi-Fi of the Pi 3, 4 and 5 (brcmfmac keeps
// the kernel's name: it has no predictable name).
const WiFiInterface = "wlan0"

// WiFiConfig is the supplicant configuration provisioning writes; the
// supplicant only starts once it exists.
const WiFiConfig = "/etc/wpa_supplicant/wpa_supplicant-" + WiFiInterface + ".conf"

// NetworkUnits are the base's units the network needs enabled.
func NetworkUnits(n Network) []string {
	return []string{"systemd-networkd.service", "systemd-resolved.service", "systemd-timesyncd.service"}
}

// NetworkFiles are the network's configuration files. Everything lives in
// /usr/lib (the vendor directories), so a file provisioning or an admin
// puts in /etc (on the data partition) overrides it by name.
func NetworkFiles(n Network) []File {
	const netDir = "/usr/lib/systemd/network/"
	common := func(b *strings.Builder) {
		for _, d := range n.DNS {
			fmt.Fprintf(b, "DNS=%s\n", d)
		}
		for _, s := range n.NTP {
			fmt.Fprintf(b, "NTP=%s\n", s)
		}
	}
	dhcp := "no"
	if n.DHCP {
		dhcp = "yes"
	}
	var wired strings.Builder
	wired.WriteString("# pibake: the wired interface (Pi 4's end0, Pi 3's USB LAN, QEMU's NIC).\n" +
		"# podman's bridges (podman*) and veths do not match: their names do not\n" +
		"# start with en or eth.\n" +
		"[Match]\nType=ether\nName=en* eth*\n\n[Network]\n")
	fmt.Fprintf(&wired, "DHCP=%s\n", dhcp)
	for _, a := range n.Addresses {
		fmt.Fprintf(&wired, "Address=%s\n", a)
	}
	if n.Gateway != "" {
		fmt.Fprintf(&wired, "Gateway=%s\n", n.Gateway)
	}
	common(&wired)
	wired.WriteString("IPv6AcceptRA=yes\n\n[DHCPv4]\nUseDomains=yes\n")
	fs := []File{
		{Path: netDir + "80-pibake-wired.network", Data: []byte(wired.String()), Mode: 0o644},
		// systemd sets the clock no earlier than this file's time, which is
		// the image's build time; timesyncd's saved clock (/var, on the
		// data partition) then keeps it from going back across reboots.
		{Path: "/usr/lib/clock-epoch", Data: nil, Mode: 0o644},
		{Path: "/etc/resolv.conf", Link: "../run/systemd/resolve/stub-resolv.conf"},
		// Online is one link up with an address, wired or Wi-Fi, or 30 s
		// gone by: a Pi with its Wi-Fi unprovisioned or its cable out must
		// not hold network-online.target (which podman's containers wait
		// for) for two minutes, nor count as a failed boot. The timeout
		// is still logged.
		{Path: "/usr/lib/systemd/system/systemd-networkd-wait-online.service.d/50-pibake.conf", Mode: 0o644, Data: []byte(
			"[Service]\nExecStart=\nExecStart=-/usr/lib/systemd/systemd-networkd-wait-online --any --timeout=" + strconv.Itoa(OnlineTimeout) + "\n")},
	}
	if len(n.NTP) > 0 {
		conf := "[Time]\nNTP=" + strings.Join(n.NTP, " ") + "\n"
		fs = append(fs, File{Path: "/usr/lib/systemd/timesyncd.conf.d/50-pibake.conf", Data: []byte(conf), Mode: 0o644})
	}
	if n.WiFi {
		var wlan strings.Builder
		wlan.WriteString("# pibake: the onboard Wi-Fi, once provisioning gave it a network.\n[Match]\nType=wlan\n\n[Network]\nDHCP=yes\n")
		common(&wlan)
		wlan.WriteString("IPv6AcceptRA=yes\n\n[DHCPv4]\nUseDomains=yes\n# Prefer the wire when both are up.\nRouteMetric=600\n")
		fs = append(fs,
			File{Path: netDir + "80-pibake-wlan.network", Data: []byte(wlan.String()), Mode: 0o644},
			File{Path: "/usr/lib/systemd/system/wpa_supplicant@" + WiFiInterface + ".service.d/50-pibake.conf", Mode: 0o644, Data: []byte(
				"# pibake: Wi-Fi starts once provisioning wrote its networks.\n[Unit]\nConditionPathExists=" + WiFiConfig + "\n")},
			// Started when the Wi-Fi device appears, not by multi-user: a
			// board without it (a CM4 Lite, QEMU) never waits for it.
			File{Path: "/etc/systemd/system/sys-subsystem-net-devices-" + WiFiInterface + ".device.wants/wpa_supplicant@" + WiFiInterface + ".service",
				Link: "/usr/lib/systemd/system/wpa_supplicant@.service"},
		)
	}
	return fs
}
