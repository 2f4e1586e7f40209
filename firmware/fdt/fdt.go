// Package fdt reads and writes flattened device trees (the .dtb files the
// kernel ships and the Pi firmware hands to U-Boot): enough to walk nodes,
// follow phandle links and edit a copy.
//
// Limits: version 16/17 blobs; the memory reservation map and the boot CPU
// are kept as they are; Encode writes version 17 with the strings block
// deduplicated, so an edited tree is not byte-identical to dtc's output.
package fdt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

const (
	magic      = 0xd00dfeed
	headerSize = 40

	tokBeginNode = 1
	tokEndNode   = 2
	tokProp      = 3
	tokNop       = 4
	tokEnd       = 9

	// maxDepth bounds nesting so a hostile blob cannot exhaust the stack.
	maxDepth = 64
)

// ErrFormat wraps every reason a blob is not a device tree.
var ErrFormat = errors.New("not a valid flattened device tree")

// Tree is a parsed device tree.
type Tree struct {
	Root       *Node
	Reserve    [][2]uint64 // memory reservation map: address, size
	BootCPU    uint32
	byPhandle  map[uint32]*Node
	phandleSet bool
}

// Node is one node; Name includes the unit address ("mmc@7e340000").
type Node struct {
	Name     string
	Props    []Prop
	Children []*Node
	Parent   *Node
}

// Prop is one property with its raw big-endian value.
type Prop struct {
	Name  string
	Value []byte
}

func formatErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, a...))
}

// Parse reads a device tree blob.
func Parse(data []byte) (*Tree, error) {
	h, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	data = data[:h.total]
	t := &Tree{BootCPU: h.bootCPU}
	if t.Reserve, err = parseReserve(data, h.offRsv); err != nil {
		return nil, err
	}
	sp := &structParser{
		st:   data[h.offStruct : h.offStruct+h.sizeStruct],
		strs: data[h.offStrings : h.offStrings+h.sizeStrings],
	}
	if t.Root, err = sp.parse(); err != nil {
		return nil, err
	}
	return t, nil
}

// header is what Parse takes from a blob's header: the blob's size, where
// its blocks lie, and the boot CPU.
type header struct {
	total                   uint32
	offStruct, sizeStruct   uint32
	offStrings, sizeStrings uint32
	offRsv                  uint32
	bootCPU                 uint32
}

// parseHeader reads and checks the header: magic, version, and every
// block inside the blob's total size.
func parseHeader(data []byte) (header, error) {
	if len(data) < headerSize {
		return header{}, formatErr("%d bytes is shorter than the header", len(data))
	}
	be := binary.BigEndian
	if be.Uint32(data) != magic {
		return header{}, formatErr("bad magic %#x", be.Uint32(data))
	}
	h := header{
		total:       be.Uint32(data[4:]),
		offStruct:   be.Uint32(data[8:]),
		offStrings:  be.Uint32(data[12:]),
		offRsv:      be.Uint32(data[16:]),
		bootCPU:     be.Uint32(data[28:]),
		sizeStrings: be.Uint32(data[32:]),
		sizeStruct:  be.Uint32(data[36:]),
	}
	version, lastComp := be.Uint32(data[20:]), be.Uint32(data[24:])
	if uint64(h.total) > uint64(len(data)) || h.total < headerSize {
		return header{}, formatErr("total size %d, blob has %d bytes", h.total, len(data))
	}
	if version < 16 || lastComp > 17 {
		return header{}, formatErr("version %d (compatible with %d) is not supported", version, lastComp)
	}
	within := func(off, size uint32) bool { return uint64(off)+uint64(size) <= uint64(h.total) }
	if !within(h.offStruct, h.sizeStruct) || !within(h.offStrings, h.sizeStrings) || h.offRsv < headerSize || h.offRsv >= h.total {
		return header{}, formatErr("blocks lie outside the blob")
	}
	return h, nil
}

// parseReserve reads the memory reservation map at off of data (the whole
// blob), up to its terminating all-zero entry.
func parseReserve(data []byte, off uint32) ([][2]uint64, error) {
	be := binary.BigEndian
	var out [][2]uint64
	for p := off; ; p += 16 {
		if uint64(p)+16 > uint64(len(data)) {
			return nil, formatErr("memory reservation map runs past the end")
		}
		addr, size := be.Uint64(data[p:]), be.Uint64(data[p+8:])
		if addr == 0 && size == 0 {
			return out, nil
		}
		out = append(out, [2]uint64{addr, size})
	}
}

// structParser walks the structure block st, naming properties from the
// strings block strs. stack holds the nodes begun and not yet ended.
type structParser struct {
	st, strs []byte
	pos      int
	stack    []*Node
	root     *Node
}

func (p *structParser) u32() (uint32, error) {
	if p.pos+4 > len(p.st) {
		return 0, formatErr("structure block ends inside a token")
	}
	v := binary.BigEndian.Uint32(p.st[p.pos:])
	p.pos += 4
	return v, nil
}

func (p *structParser) align() { p.pos = (p.pos + 3) &^ 3 }

// parse reads tokens up to the end token and returns the root node.
func (p *structParser) parse() (*Node, error) {
	for {
		tok, err := p.u32()
		if err != nil {
			return nil, err
		}
		switch tok {
		case tokNop:
		case tokBeginNode:
			if err := p.beginNode(); err != nil {
				return nil, err
			}
		case tokEndNode:
			if len(p.stack) == 0 {
				return nil, formatErr("end of a node that was not begun")
			}
			p.stack = p.stack[:len(p.stack)-1]
		case tokProp:
			if err := p.prop(); err != nil {
				return nil, err
			}
		case tokEnd:
			if len(p.stack) != 0 || p.root == nil {
				return nil, formatErr("structure ends inside a node")
			}
			return p.root, nil
		default:
			return nil, formatErr("unknown token %#x at offset %d", tok, p.pos-4)
		}
	}
}

// beginNode reads a node's name and opens it under the current node.
func (p *structParser) beginNode() error {
	end := bytes.IndexByte(p.st[p.pos:], 0)
	if end < 0 {
		return formatErr("node name not terminated")
	}
	n := &Node{Name: string(p.st[p.pos : p.pos+end])}
	p.pos += end + 1
	p.align()
	if len(p.stack) == 0 {
		if p.root != nil {
			return formatErr("more than one root node")
		}
		p.root = n
	} else {
		parent := p.stack[len(p.stack)-1]
		n.Parent = parent
		parent.Children = append(parent.Children, n)
	}
	if len(p.stack) >= maxDepth {
		return formatErr("nodes nested deeper than %d", maxDepth)
	}
	p.stack = append(p.stack, n)
	return nil
}

// prop reads a property (length, name offset, value) into the current node.
func (p *structParser) prop() error {
	if len(p.stack) == 0 {
		return formatErr("property outside any node")
	}
	l, err := p.u32()
	if err != nil {
		return err
	}
	nameOff, err := p.u32()
	if err != nil {
		return err
	}
	if uint64(p.pos)+uint64(l) > uint64(len(p.st)) {
		return formatErr("property value runs past the structure block")
	}
	if int(nameOff) >= len(p.strs) {
		return formatErr("property name offset %d outside the strings block", nameOff)
	}
	end := bytes.IndexByte(p.strs[nameOff:], 0)
	if end < 0 {
		return formatErr("property name not terminated")
	}
	n := p.stack[len(p.stack)-1]
	n.Props = append(n.Props, Prop{Name: string(p.strs[nameOff : int(nameOff)+end]), Value: append([]byte(nil), p.st[p.pos:p.pos+int(l)]...)})
	p.pos += int(l)
	p.align()
	return nil
}

// Encode writes the tree as a version 17 blob.
func (t *Tree) Encode() []byte {
	be := binary.BigEndian
	var st, strs bytes.Buffer
	offsets := map[string]int{}
	put := func(v uint32) { _ = binary.Write(&st, be, v) }
	pad := func() {
		for st.Len()%4 != 0 {
			st.WriteByte(0)
		}
	}
	var walk func(n *Node)
	walk = func(n *Node) {
		put(tokBeginNode)
		st.WriteString(n.Name)
		st.WriteByte(0)
		pad()
		for _, p := range n.Props {
			off, ok := offsets[p.Name]
			if !ok {
				off = strs.Len()
				offsets[p.Name] = off
				strs.WriteString(p.Name)
				strs.WriteByte(0)
			}
			put(tokProp)
			put(uint32(len(p.Value)))
			put(uint32(off))
			st.Write(p.Value)
			pad()
		}
		for _, c := range n.Children {
			walk(c)
		}
		put(tokEndNode)
	}
	walk(t.Root)
	put(tokEnd)

	rsv := make([]byte, 16*(len(t.Reserve)+1))
	for i, r := range t.Reserve {
		be.PutUint64(rsv[16*i:], r[0])
		be.PutUint64(rsv[16*i+8:], r[1])
	}
	offRsv := headerSize + 8 // keep the map 8-byte aligned
	offStruct := offRsv + len(rsv)
	offStrings := offStruct + st.Len()
	total := offStrings + strs.Len()
	out := make([]byte, total)
	be.PutUint32(out[0:], magic)
	be.PutUint32(out[4:], uint32(total))
	be.PutUint32(out[8:], uint32(offStruct))
	be.PutUint32(out[12:], uint32(offStrings))
	be.PutUint32(out[16:], uint32(offRsv))
	be.PutUint32(out[20:], 17)
	be.PutUint32(out[24:], 16)
	be.PutUint32(out[28:], t.BootCPU)
	be.PutUint32(out[32:], uint32(strs.Len()))
	be.PutUint32(out[36:], uint32(st.Len()))
	copy(out[offRsv:], rsv)
	copy(out[offStruct:], st.Bytes())
	copy(out[offStrings:], strs.Bytes())
	return out
}

// Prop returns the named property's value, or nil and false.
func (n *Node) Prop(name string) ([]byte, bool) {
	for _, p := range n.Props {
		if p.Name == name {
			return p.Value, true
		}
	}
	return nil, false
}

// DeleteProp removes the named property; it reports whether there was one.
func (n *Node) DeleteProp(name string) bool {
	for i, p := range n.Props {
		if p.Name == name {
			n.Props = append(n.Props[:i], n.Props[i+1:]...)
			return true
		}
	}
	return false
}

// SetProp sets or adds a property.
func (n *Node) SetProp(name string, value []byte) {
	for i, p := range n.Props {
		if p.Name == name {
			n.Props[i].Value = value
			return
		}
	}
	n.Props = append(n.Props, Prop{Name: name, Value: value})
}

// Strings splits a string-list property ("compatible").
func (n *Node) Strings(name string) []string {
	v, ok := n.Prop(name)
	if !ok || len(v) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(v), "\x00"), "\x00")
}

// U32 reads a one-cell property.
func (n *Node) U32(name string) (uint32, bool) {
	v, ok := n.Prop(name)
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// Cells reads a property as a list of 32-bit cells.
func (n *Node) Cells(name string) ([]uint32, bool) {
	v, ok := n.Prop(name)
	if !ok || len(v)%4 != 0 {
		return nil, false
	}
	out := make([]uint32, len(v)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(v[4*i:])
	}
	return out, true
}

// Path is the node's full path ("/emmc2bus/mmc@7e340000").
func (n *Node) Path() string {
	if n.Parent == nil {
		return "/"
	}
	var parts []string
	for c := n; c.Parent != nil; c = c.Parent {
		parts = append(parts, c.Name)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString("/" + parts[i])
	}
	return b.String()
}

// Enabled reports whether the node's status allows a driver to bind.
func (n *Node) Enabled() bool {
	s := n.Strings("status")
	return len(s) == 0 || s[0] == "okay" || s[0] == "ok"
}

// Walk visits every node, parents first.
func (t *Tree) Walk(fn func(*Node)) {
	var walk func(*Node)
	walk = func(n *Node) {
		fn(n)
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(t.Root)
}

// Phandle returns the node a phandle names, or nil.
func (t *Tree) Phandle(h uint32) *Node {
	if !t.phandleSet {
		t.byPhandle = map[uint32]*Node{}
		t.Walk(func(n *Node) {
			for _, name := range []string{"phandle", "linux,phandle"} {
				if v, ok := n.U32(name); ok {
					t.byPhandle[v] = n
				}
			}
		})
		t.phandleSet = true
	}
	return t.byPhandle[h]
}

// Compatible returns the nodes whose compatible list holds c.
func (t *Tree) Compatible(c string) []*Node {
	var out []*Node
	t.Walk(func(n *Node) {
		for _, s := range n.Strings("compatible") {
			if s == c {
				out = append(out, n)
				return
			}
		}
	})
	return out
}
