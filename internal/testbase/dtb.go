package testbase

import (
	"encoding/binary"
	"strings"

	"github.com/pibake/pibake/firmware/fdt"
)

// ModulesAlias gives the fake modules the OF aliases Debian's kernel has
// for them.
const ModulesAlias = `# Aliases extracted from modules themselves.
alias of:N*T*Cbrcm,bcm2711-emmc2C* sdhci_iproc
alias of:N*T*Cbrcm,bcm2711-emmc2 sdhci_iproc
alias of:N*T*Cbrcm,bcm2835-sdhost bcm2835
alias of:N*T*Cregulator-gpioC* gpio_regulator
alias of:N*T*Cregulator-gpio gpio_regulator
alias of:N*T*Cregulator-fixed fixed
alias virtio:d00000002v* virtio_blk
`

// Node builds a device-tree node for tests: props are name, value pairs
// where a value is a string (a string list when it holds NULs), a uint32,
// or a []uint32 of cells.
func Node(name string, props []any, children ...*fdt.Node) *fdt.Node {
	n := &fdt.Node{Name: name}
	for i := 0; i+1 < len(props); i += 2 {
		var v []byte
		switch x := props[i+1].(type) {
		case string:
			v = append([]byte(x), 0)
		case uint32:
			v = binary.BigEndian.AppendUint32(nil, x)
		case []uint32:
			for _, c := range x {
				v = binary.BigEndian.AppendUint32(v, c)
			}
		case nil:
		}
		n.Props = append(n.Props, fdt.Prop{Name: props[i].(string), Value: v})
	}
	for _, c := range children {
		c.Parent = n
		n.Children = append(n.Children, c)
	}
	return n
}

// Pi4DTB is a bcm2711-shaped device tree: emmc2 on its own bus, with a
// GPIO regulator (on the firmware's GPIO expander) and a fixed regulator
// as its supplies, the way the real one has them.
func Pi4DTB() []byte {
	root := Node("", []any{"compatible", "raspberrypi,4-model-b\x00brcm,bcm2711", "#address-cells", uint32(2)},
		Node("firmware", []any{"compatible", "raspberrypi,bcm2835-firmware", "phandle", uint32(1)},
			Node("gpio", []any{"compatible", "raspberrypi,firmware-gpio", "#gpio-cells", uint32(2), "phandle", uint32(2)})),
		Node("regulator-sd-io-1v8", []any{"compatible", "regulator-gpio", "gpios", []uint32{2, 4, 0}, "phandle", uint32(3)}),
		Node("regulator-sd-vcc", []any{"compatible", "regulator-fixed", "gpio", []uint32{2, 6, 0}, "phandle", uint32(4)}),
		Node("emmc2bus", []any{"compatible", "simple-bus"},
			Node("mmc@7e340000", []any{"compatible", "brcm,bcm2711-emmc2", "status", "okay", "vqmmc-supply", uint32(3), "vmmc-supply", uint32(4)})),
	)
	return (&fdt.Tree{Root: root}).Encode()
}

// Pi3DTB is a bcm2837-shaped device tree: the SD slot on sdhost.
func Pi3DTB() []byte {
	root := Node("", []any{"compatible", "raspberrypi,3-model-b\x00brcm,bcm2837"},
		Node("soc", []any{"compatible", "simple-bus"},
			Node("mmc@7e202000", []any{"compatible", "brcm,bcm2835-sdhost", "status", "okay"}),
			Node("mmc@7e300000", []any{"compatible", "brcm,bcm2835-sdhci", "status", "okay"})),
	)
	return (&fdt.Tree{Root: root}).Encode()
}

// Pi5DTB is a bcm2712-shaped device tree: the SD slot on the bcm2712's
// sdhci, for which Debian trixie's kernel has no driver.
func Pi5DTB() []byte {
	root := Node("", []any{"compatible", "raspberrypi,5-model-b\x00brcm,bcm2712"},
		Node("soc", []any{"compatible", "simple-bus"},
			Node("mmc@fff000", []any{"compatible", "brcm,bcm2712-sdhci\x00brcm,sdhci-brcmstb", "status", "okay"})),
	)
	return (&fdt.Tree{Root: root}).Encode()
}

// DTBNames are the Pi device trees of the fake kernel: those Debian's
// kernels ship for the bcm2837, bcm2711 and bcm2712 boards.
var DTBNames = []string{
	"bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb", "bcm2711-rpi-cm4-io.dtb",
	"bcm2712-d-rpi-5-b.dtb", "bcm2712-rpi-5-b.dtb",
	"bcm2837-rpi-3-a-plus.dtb", "bcm2837-rpi-3-b-plus.dtb", "bcm2837-rpi-3-b.dtb", "bcm2837-rpi-cm3-io3.dtb", "bcm2837-rpi-zero-2-w.dtb",
}

// DTB is the fake kernel's device tree of that name: its SoC's tree with
// the name as its model.
func DTB(name string) []byte {
	var base []byte
	switch {
	case strings.HasPrefix(name, "bcm2711-"):
		base = Pi4DTB()
	case strings.HasPrefix(name, "bcm2712-"):
		base = Pi5DTB()
	default:
		base = Pi3DTB()
	}
	t, err := fdt.Parse(base)
	if err != nil {
		panic(err)
	}
	t.Root.Props = append(t.Root.Props, fdt.Prop{Name: "model", Value: append([]byte(name), 0)})
	return t.Encode()
}
