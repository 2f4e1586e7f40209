package firmware

import (
	"bytes"
	"path"
	"strings"
	"testing"

	"github.com/pibake/pibake/firmware/fdt"
)

// TestFDTVariantsTellTheTreesApart: each board's FDTVariant replaces the
// ${fdtfile} one of its models gets from U-Boot, loads a tree every slot
// holds, and its node and value are in the variant's own tree only. Read
// from the kernel images/pi5.lock pins (its linux-base package carries
// the trees), when the cache has it: on linux-image 7.3.4 the C1 tree's
// pinctrl is brcm,bcm2712c0-pinctrl, the D0 tree's brcm,bcm2712d0-pinctrl.
func TestFDTVariantsTellTheTreesApart(t *testing.T) {
	pi5, err := Lookup("pi5")
	if err != nil {
		t.Fatal(err)
	}
	if len(pi5.FDTVariants) == 0 {
		t.Fatal("pi5 has no FDTVariants: every Pi 5 boots the C1 tree")
	}
	// The script's commands are in the U-Boot the lock pins.
	bin := lockedUBoot(t)
	for _, usage := range []string{"fdt addr", "fdt get value <var> <path> <prop>", "fdtcontroladdr"} {
		if !bytes.Contains(bin, []byte(usage)) {
			t.Errorf("u-boot-rpi's rpi_arm64/u-boot.bin has no %q", usage)
		}
	}
	files := lockedFiles(t, "../images/pi5.lock", "linux-base-7.3.4+deb13-arm64", func(name string) bool {
		return strings.HasPrefix(path.Base(name), "bcm2712-") && path.Base(path.Dir(name)) == "broadcom"
	})
	trees := map[string][]byte{}
	for name, data := range files {
		trees[path.Base(name)] = data
	}
	slot, err := pi5.SlotDTBs(trees)
	if err != nil {
		t.Fatal(err)
	}
	inSlot := map[string]bool{}
	for _, d := range slot {
		inSlot["broadcom/"+d.Name] = true
	}
	for _, v := range pi5.FDTVariants {
		models := false
		for _, m := range pi5.Models {
			models = models || "broadcom/"+m.FDTFile == v.FDTFile
		}
		if !models || !inSlot[v.FDTFile] || !inSlot[v.File] {
			t.Errorf("variant %+v: U-Boot's name is a model's: %v; the slot holds %v", v, models, inSlot)
		}
		for file, want := range map[string]bool{v.FDTFile: false, v.File: true} {
			tree, err := fdt.Parse(trees[path.Base(file)])
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			var got []string
			tree.Walk(func(n *fdt.Node) {
				if n.Path() == v.Node {
					got = n.Strings(v.Prop)
				}
			})
			// U-Boot's 'fdt get value' reads the first string.
			if has := len(got) > 0 && got[0] == v.Value; has != want {
				t.Errorf("%s: %s %s is %q; the variant takes it for %s when it is %q", file, v.Node, v.Prop, got, v.File, v.Value)
			}
		}
	}
}
