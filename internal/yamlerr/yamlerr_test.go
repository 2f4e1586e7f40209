package yamlerr

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFormatAndLine(t *testing.T) {
	for _, c := range []struct {
		line        int
		field, want string
	}{{7, "wifi.country", "f.yaml:7: wifi.country: bad"}, {0, "hostname", "f.yaml: hostname: bad"}, {3, "", "f.yaml:3: bad"}} {
		if got := format("f.yaml", c.line, c.field, "bad"); got != c.want {
			t.Errorf("format(%d, %q) = %q, want %q", c.line, c.field, got, c.want)
		}
	}
	if n := lineOf(errors.New("yaml: line 12: mapping values are not allowed")); n != 12 {
		t.Errorf("lineOf = %d", n)
	}
	if n := lineOf(errors.New("no place")); n != 0 {
		t.Errorf("lineOf without a line = %d", n)
	}
	if s := stripPrefix("yaml: unmarshal errors:\n  line 3: a\n  line 4: b"); s != "line 3: a; line 4: b" {
		t.Errorf("stripPrefix = %q", s)
	}
}

func TestParse(t *testing.T) {
	const secret = "hunter2-passphrase"
	for _, c := range []struct{ name, data, want string }{
		{"empty", "", ""},
		{"comments", "# nothing\n", ""},
		{"null", "~\n", ""},
		{"malformed", "a: 1\nb: [\n", "f.yaml:2: malformed YAML: did not find expected node content (fix it)"},
		{"unclosed list", "a: [x\n", "f.yaml:1: malformed YAML: did not find expected ',' or ']' (fix it)"},
		{"second document", "a: 1\n---\nb: 2\n", "f.yaml:2: a second YAML document ('---'): want one"},
		{"broken second document", "a: 1\n---\nb: [\n", "f.yaml:3: malformed YAML"},
		{"quoted input", "a: \"" + secret + "\n", "malformed YAML"},
		{"unknown anchor", "a: *" + secret + "\n", "malformed YAML: unknown anchor … referenced"},
	} {
		n, err := Parse("f.yaml", []byte(c.data), Options{Hint: "(fix it)"})
		switch {
		case c.want == "" && (err != nil || n != nil):
			t.Errorf("%s: %v, %v; want nothing", c.name, n, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		case c.want != "" && !errors.Is(err, ErrInvalid):
			t.Errorf("%s: %v does not wrap ErrInvalid", c.name, err)
		case err != nil && strings.Contains(err.Error(), secret):
			t.Errorf("%s: the message quotes the input: %v", c.name, err)
		}
	}
	if n, err := Parse("f.yaml", []byte("- a\n"), Options{}); err != nil || n == nil || n.Line != 1 {
		t.Errorf("a list: %v, %v", n, err)
	}
	if _, err := Parse("f.yaml", []byte("a: *"+secret+"\n"), Options{KeepQuotes: true}); err == nil || !strings.Contains(err.Error(), "unknown anchor '"+secret+"'") {
		t.Errorf("KeepQuotes: %v", err)
	}
}

type inner struct {
	Units []string `yaml:"units"`
}

type shared struct {
	Poll time.Duration `yaml:"poll"`
}

type outer struct {
	Name    string            `yaml:"name"`
	Health  inner             `yaml:"health"`
	List    []*inner          `yaml:"list"`
	Labels  map[string]string `yaml:"labels"`
	Shared  shared            `yaml:",inline"`
	Skipped string            `yaml:"-"`
}

func TestUnmarshal(t *testing.T) {
	var o outer
	if err := Unmarshal("f.yaml", []byte("name: a\nhealth:\n  units: [x]\nlist:\n  - units: [y]\nlabels: {any: key}\npoll: 1m\n"), &o); err != nil {
		t.Fatal(err)
	}
	if o.Name != "a" || o.Health.Units[0] != "x" || o.List[0].Units[0] != "y" || o.Labels["any"] != "key" || o.Shared.Poll != time.Minute {
		t.Errorf("decoded %+v", o)
	}
	err := Unmarshal("f.yaml", []byte("name: a\nnmae: b\nhealth:\n  unit: [x]\nlist:\n  - {units: [y], extra: 1}\nSkipped: x\n"), &o)
	var es Errors
	if !errors.As(err, &es) || len(es) != 4 || !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown fields: %v", err)
	}
	for i, want := range []string{
		"f.yaml:2: nmae: unknown field (known: health, labels, list, name, poll)",
		"f.yaml:4: health.unit: unknown field (known: units)",
		"f.yaml:6: list.0.extra: unknown field (known: units)",
		"f.yaml:7: Skipped: unknown field",
	} {
		if !strings.HasPrefix(es[i].Error(), want) {
			t.Errorf("error %d: %q, want %q", i, es[i], want)
		}
	}
	err = Unmarshal("f.yaml", []byte("name: a\n\nhealth: {units: 3}\n"), &o)
	if err == nil || !strings.HasPrefix(err.Error(), "f.yaml:3: cannot unmarshal") {
		t.Errorf("wrong type: %v", err)
	}
	o = outer{Name: "kept"}
	if err := Unmarshal("f.yaml", []byte("# empty\n"), &o); err != nil || o.Name != "kept" {
		t.Errorf("empty document: %v, %+v", err, o)
	}
}

// TestParseQuotesNothing: without KeepQuotes a syntax error keeps none of
// the input, however short the text the parser would quote: the line and
// one of the parser's fixed messages, or the line alone. With KeepQuotes
// the parser's message is kept as it is.
func TestParseQuotesNothing(t *testing.T) {
	for _, c := range []struct{ data, secret, want, keep string }{
		{"a: *pw2\n", "pw2", "f.yaml: malformed YAML: unknown anchor … referenced", "f.yaml: malformed YAML: unknown anchor 'pw2' referenced"},
		{"a: !<pw1secret\n", "pw1", "f.yaml: malformed YAML: did not find the expected '>'", ""},
		{"a: 1\nb: 'Hunter2Secret\n", "Hunter2", "f.yaml:2: malformed YAML: found unexpected end of stream", ""},
		{"a: \"pw4\\q\"\n", "pw4", "f.yaml: malformed YAML: found unknown escape character", ""},
		{"a:\n\t- pw7\n", "pw7", "f.yaml:2: malformed YAML: found character that cannot start any token", ""},
		{"{pw8: [pw9\n", "pw", "f.yaml:1: malformed YAML: did not find expected ',' or ']'", ""},
	} {
		_, err := Parse("f.yaml", []byte(c.data), Options{})
		if err == nil || err.Error() != c.want || strings.Contains(err.Error(), c.secret) {
			t.Errorf("%q: %v; want %q (and no %q)", c.data, err, c.want, c.secret)
		}
		keep := c.keep
		if keep == "" {
			keep = c.want
		}
		if _, err := Parse("f.yaml", []byte(c.data), Options{KeepQuotes: true}); err == nil || err.Error() != keep {
			t.Errorf("%q with KeepQuotes: %v; want %q", c.data, err, keep)
		}
	}
}

// TestFixedMessage: a message of the parser that is not one of its fixed
// texts (the library changed, an input error) leaves the line alone.
func TestFixedMessage(t *testing.T) {
	for in, want := range map[string]string{
		"did not find expected key":              ": did not find expected key",
		"anchor 'Hunter2' value contains itself": ": an anchor's value contains itself",
		"input error: Hunter2":                   "",
		"did not find expected key near Hunter2": "",
		"exceeded max depth of 10000":            ": nested too deep",
	} {
		if got := fixedMessage(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
