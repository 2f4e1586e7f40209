package imagedef

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// reNTPServer is a host name or an IP address.
var reNTPServer = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.:-]{0,251}[A-Za-z0-9])?$`)

// Network is how the device joins a network and keeps its clock. Every
// image gets it (docs/network.md): systemd-networkd with DHCP on the wired
// interface, systemd-resolved for names, systemd-timesyncd for the clock,
// and, unless WiFi is false, the Pi's Wi-Fi chip driven by wpa_supplicant
// with networks given at first boot by provisioning (never in the image).
type Network struct {
	// DHCP asks for IPv4 and IPv6 addresses on the wired interface
	// (default true). With DHCP false, Addresses must be given.
	DHCP *bool `yaml:"dhcp"`
	// Addresses are static addresses (CIDR) of the wired interface, added
	// to what DHCP gives when DHCP is on.
	Addresses []string `yaml:"addresses"`
	// Gateway is the default route of a static setup.
	Gateway string `yaml:"gateway"`
	// DNS servers used in addition to those DHCP gives.
	DNS []string `yaml:"dns"`
	// NTP servers used in addition to those DHCP gives (timesyncd's own
	// defaults stay as the fallback).
	NTP []string `yaml:"ntp"`
	// WiFi installs the firmware, regulatory database and supplicant for
	// the Pi's onboard Wi-Fi (default true).
	WiFi *bool `yaml:"wifi"`
	// TimeWait is how long the update agent waits at boot for the clock to
	// be synchronised before it starts anyway (default 90s, 0 to not wait).
	TimeWait *time.Duration `yaml:"time_wait"`
}

// DefaultTimeWait is Network.TimeWait when the definition gives none.
const DefaultTimeWait = 90 * time.Second

// UseDHCP reports whether the wired interface asks DHCP (the default).
func (n Network) UseDHCP() bool { return n.DHCP == nil || *n.DHCP }

// UseWiFi reports whether the image carries Wi-Fi support (the default).
func (n Network) UseWiFi() bool { return n.WiFi == nil || *n.WiFi }

// Wait is the agent's wait for a synchronised clock.
func (n Network) Wait() time.Duration {
	if n.TimeWait == nil {
		return DefaultTimeWait
	}
	return *n.TimeWait
}

// Packages are the Debian packages the network setup needs; the builder
// adds them to the definition's own when it resolves the lock.
func (n Network) Packages() []string {
	p := []string{"systemd-resolved", "systemd-timesyncd"}
	if n.UseWiFi() {
		p = append(p, "firmware-brcm80211", "wireless-regdb", "wpasupplicant")
	}
	return p
}

func (n Network) validate(d *Definition) []fieldError {
	var errs []fieldError
	bad := func(msg string, p ...string) {
		errs = append(errs, fieldError{path: append([]string{"network"}, p...), msg: msg})
	}
	for i, a := range n.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			bad(fmt.Sprintf("%q is not an address with its prefix length (e.g. 192.168.1.20/24 or 2001:db8::20/64)", a), "addresses", strconv.Itoa(i))
		}
	}
	if !n.UseDHCP() && len(n.Addresses) == 0 {
		bad("dhcp is false but no addresses are given: the device would have no address on the wire", "dhcp")
	}
	if n.Gateway != "" {
		if _, err := netip.ParseAddr(n.Gateway); err != nil {
			bad(fmt.Sprintf("%q is not an IP address", n.Gateway), "gateway")
		}
	}
	for i, a := range n.DNS {
		if _, err := netip.ParseAddr(a); err != nil {
			bad(fmt.Sprintf("%q is not an IP address", a), "dns", strconv.Itoa(i))
		}
	}
	for i, s := range n.NTP {
		if !reNTPServer.MatchString(s) {
			bad(fmt.Sprintf("%q is not a host name or IP address", s), "ntp", strconv.Itoa(i))
		}
	}
	if n.TimeWait != nil && (*n.TimeWait < 0 || *n.TimeWait > time.Hour) {
		bad(fmt.Sprintf("%s is outside 0s..1h", *n.TimeWait), "time_wait")
	}
	if n.UseWiFi() && !slices.Contains(d.Debian.Components, "non-free-firmware") {
		bad("wifi needs Debian's non-free-firmware component (firmware-brcm80211): add it to debian.components or set network.wifi: false", "wifi")
	}
	for i, p := range d.Debian.Packages {
		if slices.Contains(n.Packages(), p) {
			errs = append(errs, fieldError{path: []string{"debian", "packages", strconv.Itoa(i)}, msg: fmt.Sprintf("package %q is added by the network section (docs/network.md); remove it here", p)})
		}
	}
	return errs
}
