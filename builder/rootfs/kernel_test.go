package rootfs

import (
	"strings"
	"testing"
)

// Both places a Debian kernel package puts its files are read: trixie's
// 6.12 (/boot, /usr/lib/linux-image-V) and the 7.x packages of
// trixie-backports (/usr/lib/modules/V/{vmlinuz,config,dtb/}).
func TestKernelFilesBothLayouts(t *testing.T) {
	layouts := map[string][]string{
		"old": {"boot/vmlinuz-6.12.118+deb13-arm64", "boot/config-6.12.118+deb13-arm64",
			"usr/lib/linux-image-6.12.118+deb13-arm64/broadcom/bcm2711-rpi-4-b.dtb",
			"usr/lib/linux-image-6.12.118+deb13-arm64/broadcom/bcm2712-rpi-5-b.dtb"},
		"new": {"usr/lib/modules/7.3.4+deb13-arm64/vmlinuz", "usr/lib/modules/7.3.4+deb13-arm64/config",
			"usr/lib/modules/7.3.4+deb13-arm64/dtb/broadcom/bcm2711-rpi-4-b.dtb",
			"usr/lib/modules/7.3.4+deb13-arm64/dtb/broadcom/bcm2712-rpi-5-b.dtb"},
	}
	ignored := []string{"usr/lib/modules/7.3.4+deb13-arm64/modules.dep", "usr/lib/modules/7.3.4+deb13-arm64/kernel/drivers/mmc/host/sdhci-brcmstb.ko.xz",
		"usr/lib/modules/7.3.4+deb13-arm64/dtb/allwinner/sun50i-a64-pine64.dtb", "usr/lib/modules/7.3.4+deb13-arm64/System.map",
		"usr/lib/linux-image-6.12.118+deb13-arm64/allwinner/x.dtb", "boot/System.map-6.12.118+deb13-arm64", "usr/lib/modules/vmlinuz"}
	for name, paths := range layouts {
		kf := kernelFiles{}
		for _, p := range append(append([]string(nil), paths...), ignored...) {
			data := []byte("contents of " + p)
			if err := kf.add(p, func() ([]byte, error) { return data, nil }); err != nil {
				t.Fatal(err)
			}
		}
		res := &Result{DTBs: map[string][]byte{}}
		if err := kf.pick(res); err != nil {
			t.Fatalf("%s layout: %v", name, err)
		}
		if !strings.HasPrefix(string(res.Kernel), "contents of ") || !strings.Contains(string(res.Kernel), "vmlinuz") ||
			!strings.Contains(string(res.KernelConfig), "config") || res.KernelVersion == "" {
			t.Errorf("%s layout: kernel %q, config %q, version %q", name, res.Kernel, res.KernelConfig, res.KernelVersion)
		}
		if len(res.DTBs) != 2 || res.DTBs["bcm2711-rpi-4-b.dtb"] == nil || res.DTBs["bcm2712-rpi-5-b.dtb"] == nil {
			t.Errorf("%s layout: device trees %v", name, keys(res.DTBs))
		}
	}
	// Both packages at once: two kernels, refused.
	kf := kernelFiles{}
	for _, p := range append(layouts["old"], layouts["new"]...) {
		_ = kf.add(p, func() ([]byte, error) { return []byte("x"), nil })
	}
	if err := kf.pick(&Result{DTBs: map[string][]byte{}}); err == nil || !strings.Contains(err.Error(), "2 kernels (6.12.118+deb13-arm64, 7.3.4+deb13-arm64)") {
		t.Errorf("two kernels: %v", err)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
