package fdt

import (
	"sort"
	"strings"
)

// A device cannot probe before the devices it links to: its regulators
// (*-supply), clocks, power domains, resets, GPIOs, mailboxes, PHYs, pin
// controllers and interrupt controllers, and the bus it sits on. Linux's
// fw_devlink follows the same properties.

// cellsProp names the provider property that says how many cells follow
// each phandle in a consumer's list; "" means none follow.
func cellsProp(prop string) (cells string, ok bool) {
	switch {
	case prop == "clocks":
		return "#clock-cells", true
	case prop == "power-domains":
		return "#power-domain-cells", true
	case prop == "resets":
		return "#reset-cells", true
	case prop == "mboxes":
		return "#mbox-cells", true
	case prop == "phys":
		return "#phy-cells", true
	case prop == "gpios" || prop == "gpio" || strings.HasSuffix(prop, "-gpios") || strings.HasSuffix(prop, "-gpio"):
		return "#gpio-cells", true
	case prop == "interrupts-extended":
		return "#interrupt-cells", true
	case strings.HasSuffix(prop, "-supply"), prop == "interrupt-parent",
		strings.HasPrefix(prop, "pinctrl-") && prop != "pinctrl-names":
		return "", true
	}
	return "", false
}

// Link is one dependency of a node.
type Link struct {
	Prop     string // the consumer's property ("vqmmc-supply"), or "parent"
	Supplier *Node  // the device providing it
}

// Links returns the devices n depends on directly. A phandle to a node
// without a compatible (a pin configuration, a regulator state) counts as
// a link to its nearest ancestor that has one.
func (t *Tree) Links(n *Node) []Link {
	var out []Link
	for _, p := range n.Props {
		cellsName, ok := cellsProp(p.Name)
		if !ok {
			continue
		}
		cells, ok := n.Cells(p.Name)
		if !ok {
			continue
		}
		for i := 0; i < len(cells); {
			s := t.Phandle(cells[i])
			i++
			if s == nil {
				if cellsName == "" {
					continue
				}
				break // the cell count of an unknown provider is unknown
			}
			if cellsName != "" {
				c, _ := s.U32(cellsName)
				i += int(c)
			}
			if d := device(s); d != nil && d != n {
				out = append(out, Link{Prop: p.Name, Supplier: d})
			}
		}
	}
	if d := device(n.Parent); d != nil && d.Parent != nil {
		out = append(out, Link{Prop: "parent", Supplier: d})
	}
	return out
}

// device is n or its nearest ancestor with a compatible property.
func device(n *Node) *Node {
	for ; n != nil; n = n.Parent {
		if _, ok := n.Prop("compatible"); ok {
			return n
		}
	}
	return nil
}

// Dependency is a device reached from a start node, with the chain of
// links that led to it.
type Dependency struct {
	Node *Node
	Via  []string // "vqmmc-supply -> gpios -> parent"
}

// Closure returns the start nodes and every device they depend on,
// directly or through other devices, each once, in path order.
func (t *Tree) Closure(start ...*Node) []Dependency {
	seen := map[*Node][]string{}
	queue := append([]*Node(nil), start...)
	for _, s := range start {
		seen[s] = nil
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, l := range t.Links(n) {
			if _, ok := seen[l.Supplier]; ok {
				continue
			}
			seen[l.Supplier] = append(append([]string(nil), seen[n]...), l.Prop)
			queue = append(queue, l.Supplier)
		}
	}
	out := make([]Dependency, 0, len(seen))
	for n, via := range seen {
		out = append(out, Dependency{Node: n, Via: via})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node.Path() < out[j].Node.Path() })
	return out
}

// Modalias is the "of:N<name>T<type>C<compatible>..." string the kernel
// matches against modules' device tables for this node.
func (n *Node) Modalias() string {
	name, _, _ := strings.Cut(n.Name, "@")
	typ := "<NULL>"
	if s := n.Strings("device_type"); len(s) > 0 {
		typ = s[0]
	}
	var b strings.Builder
	b.WriteString("of:N" + name + "T" + typ)
	for _, c := range n.Strings("compatible") {
		b.WriteString("C" + c)
	}
	return b.String()
}
