package provision

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// plant rewrites a YAML document with a marker in place of every key and
// every string or tagged value that is not one of the formats' words (a
// number, true or null stays), of every tag
// of its own ('!x') and of every anchor: the same shape, each text of the
// input now a marker no message has any business holding. It gives the
// new document and its markers, or ok false when data is no YAML.
func plant(data []byte) (out []byte, markers []string, ok bool) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil, nil, false
	}
	anchors := map[string]string{}
	next := func() string {
		m := fmt.Sprintf("Qz%03dmarkXv", len(markers))
		markers = append(markers, m)
		return m
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		n.HeadComment, n.LineComment, n.FootComment = "", "", ""
		if n.Anchor != "" {
			m := next()
			anchors[n.Anchor], n.Anchor = m, m
		}
		if n.Tag != "" && !strings.HasPrefix(n.Tag, "!!") {
			n.Tag = "!" + next()
		}
		switch {
		case n.Kind == yaml.AliasNode:
			if m, ok := anchors[n.Value]; ok {
				n.Value = m
			}
		case n.Kind == yaml.ScalarNode && !words[n.Value] && (n.Tag == "!!str" || n.Style&yaml.TaggedStyle != 0 || !strings.HasPrefix(n.Tag, "!!")):
			n.Value, n.Style = next(), n.Style&yaml.TaggedStyle
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, nil, false
	}
	return out, markers, true
}

// planted lists the markers msg holds.
func planted(msg string, markers []string) []string {
	var out []string
	for _, m := range markers {
		if strings.Contains(msg, m) {
			out = append(out, m)
		}
	}
	return out
}

// TestPlant: the markers replace what they should, and the shape stays.
func TestPlant(t *testing.T) {
	out, markers, ok := plant([]byte("hostname: &a box\nwifi:\n  networks:\n    - {ssid: Home, passphrase: !x Hunter2Secret, open: true}\nsecret: *a\nversion: !!int Hunter3\n"))
	if !ok {
		t.Fatal("not planted")
	}
	got := string(out)
	for _, gone := range []string{"Home", "Hunter2Secret", "box", "secret", "!x", "&a", "*a", "Hunter3"} {
		if strings.Contains(got, gone) {
			t.Errorf("%q is still there:\n%s", gone, got)
		}
	}
	for _, kept := range []string{"hostname:", "wifi:", "networks:", "ssid:", "passphrase:", "open: true", "version: !!int"} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q is gone:\n%s", kept, got)
		}
	}
	if len(markers) != 7 /* the anchor and its alias: one */ {
		t.Errorf("%d markers: %q\n%s", len(markers), markers, got)
	}
}
