package provision

import (
	"go.yaml.in/yaml/v3"
	"slices"

	"github.com/pibake/pibake/internal/yamlerr"
)

// MaxInput is the largest provisioning file read (each file).
const MaxInput = 1 << 20

// doc walks a YAML document node by node, so that every error names the
// line and the field, and so that no decoder message (which may quote a
// value, a passphrase) reaches the user. Its messages are made as say.go
// says.
type doc struct {
	file string
	src  []byte
}

func (d doc) errAt(n *yaml.Node, f field, m msg) *yamlerr.Error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return fail(d.file, line, f, m)
}

// notApplied records, in s, a setting at n that pibake does not apply.
func (d doc) notApplied(s *Spec, n *yaml.Node, f field, why msg) {
	s.NotApplied = append(s.NotApplied, notApplied(d.file, f, n.Line, why))
}

// load parses data into its top mapping; an empty document gives nil.
func (d doc) load(data []byte) (*yaml.Node, error) {
	if len(data) > MaxInput {
		return nil, fail(d.file, 0, "", "larger than the 1 MiB a provisioning file may have")
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
// refusing unknown and repeated keys; fn gets the key's path. A nil known
// accepts every key.
func (d doc) fields(n *yaml.Node, prefix field, known []string, fn func(key string, f field, k, v *yaml.Node) error) error {
	if n.Kind == yaml.AliasNode {
		return d.errAt(n, prefix, "YAML aliases (*name) are not supported: write the value out")
	}
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, prefix, "want a mapping (key: value lines), got "+kind(n))
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return d.errAt(k, prefix, "a key must be a plain name")
		}
		if k.Value == "<<" {
			return d.errAt(k, prefix, "YAML merge keys (<<) are not supported: write the fields out")
		}
		if known != nil && !slices.Contains(known, k.Value) {
			return d.errAt(k, prefix, unknownField(k.Value, known))
		}
		f := prefix.dot(k.Value)
		if seen[k.Value] {
			return d.errAt(k, f, "given twice")
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			return d.errAt(v, f, "YAML aliases (*name) are not supported: write the value out")
		}
		if err := fn(k.Value, f, k, v); err != nil {
			return err
		}
	}
	return nil
}

func (d doc) str(n *yaml.Node, f field) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
			return "", d.errAt(n, f, "want a string, got "+kind(n)+" (put it in quotes)")
		}
		return "", d.errAt(n, f, "want a string, got "+kind(n))
	}
	return n.Value, nil
}

// nonEmpty is str that refuses "".
func (d doc) nonEmpty(n *yaml.Node, f field) (string, error) {
	s, err := d.str(n, f)
	if err == nil && s == "" {
		err = d.errAt(n, f, "empty")
	}
	return s, err
}

func (d doc) boolean(n *yaml.Node, f field) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, d.errAt(n, f, "want true or false, got "+kind(n))
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, d.errAt(n, f, "want true or false")
	}
	return b, nil
}

func (d doc) seq(n *yaml.Node, f field) ([]*yaml.Node, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, d.errAt(n, f, "want a list (lines starting with '- '), got "+kind(n))
	}
	for _, c := range n.Content {
		if c.Kind == yaml.AliasNode {
			return nil, d.errAt(c, f, "YAML aliases (*name) are not supported: write the value out")
		}
	}
	return n.Content, nil
}

func (d doc) strings(n *yaml.Node, f field) ([]string, error) {
	items, err := d.seq(n, f)
	if err != nil {
		return nil, err
	}
	var out []string
	for i, c := range items {
		s, err := d.nonEmpty(c, f.at(i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// kind names a node's type for messages, never its value nor its tag.
func kind(n *yaml.Node) msg {
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
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "true/false"
	case "!!str":
		return "a string"
	case "!!timestamp":
		return "a date"
	case "!!binary":
		return "binary data"
	}
	return "a YAML tag (a value starting with '!')"
}
