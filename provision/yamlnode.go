package provision

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/pibake/pibake/internal/yamlerr"
)

// MaxInput is the largest provisioning file read (each file).
const MaxInput = 1 << 20

// doc walks a YAML document node by node, so that every error names the
// line and the field, and so that no decoder message (which may quote a
// value, a passphrase) reaches the user.
type doc struct {
	file string
	src  []byte
}

func (d doc) errAt(n *yaml.Node, field, format string, a ...any) *yamlerr.Error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &yamlerr.Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)}
}

// load parses data into its top mapping; an empty document gives nil.
func (d doc) load(data []byte) (*yaml.Node, error) {
	if len(data) > MaxInput {
		return nil, &yamlerr.Error{File: d.file, Msg: fmt.Sprintf("%d bytes: larger than the %d a provisioning file may have", len(data), MaxInput)}
	}
	top, err := yamlerr.Parse(d.file, data, yamlerr.Options{Hint: "(fix the syntax; nothing was applied)"})
	if err != nil || top == nil {
		return nil, err
	}
	if top.Kind != yaml.MappingNode {
		return nil, d.errAt(top, "", "want a YAML mapping of settings (hostname:, wifi:, ...)")
	}
	return top, nil
}

// fields calls fn for every key of a mapping, in file order, after
// refusing unknown and repeated keys. A nil known accepts every key.
func (d doc) fields(n *yaml.Node, prefix string, known []string, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		return d.errAt(n, prefix, "YAML aliases (*name) are not supported: write the value out")
	}
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, prefix, "want a mapping (key: value lines), got %s", kind(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errAt(k, prefix, "a key must be a plain name")
		}
		name := join(prefix, k.Value)
		if k.Value == "<<" {
			return d.errAt(k, name, "YAML merge keys are not supported: write the fields out")
		}
		if known != nil && !slices.Contains(known, k.Value) {
			sorted := append([]string(nil), known...)
			sort.Strings(sorted)
			return d.errAt(k, name, "unknown field (known: %s)", strings.Join(sorted, ", "))
		}
		if seen[k.Value] {
			return d.errAt(k, name, "given twice")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return d.errAt(v, name, "YAML aliases (*name) are not supported: write the value out")
		}
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (d doc) str(n *yaml.Node, field string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			return "", d.errAt(n, field, "want a string, got %s (put it in quotes)", kind(n))
		}
		return "", d.errAt(n, field, "want a string, got %s", kind(n))
	}
	return n.Value, nil
}

// nonEmpty is str that refuses "".
func (d doc) nonEmpty(n *yaml.Node, field string) (string, error) {
	s, err := d.str(n, field)
	if err == nil && s == "" {
		err = d.errAt(n, field, "empty")
	}
	return s, err
}

func (d doc) boolean(n *yaml.Node, field string) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, d.errAt(n, field, "want true or false, got %s", kind(n))
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, d.errAt(n, field, "want true or false")
	}
	return b, nil
}

func (d doc) seq(n *yaml.Node, field string) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errAt(n, field, "want a list (lines starting with '- '), got %s", kind(n))
	}
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode {
			return nil, d.errAt(c, field, "YAML aliases (*name) are not supported: write the value out")
		}
	}
	return n.Content, nil
}

func (d doc) strings(n *yaml.Node, field string) ([]string, error) {
	items, err := d.seq(n, field)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, c := range items {
		s, err := d.nonEmpty(c, field+"."+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// kind names a node's type for messages, never its value.
func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!null":
		return "nothing"
	case "!!int":
		return "a number"
	case "!!float":
		return "a number"
	case "!!bool":
		return "true/false"
	case "!!str":
		return "a string"
	}
	return "a " + strings.TrimPrefix(n.Tag, "!!") + " value"
}

func join(prefix, s string) string {
	if prefix == "" {
		return s
	}
	return prefix + "." + s
}
