// Package yamlerr is how pibake reads the YAML files it is strict about:
// image definitions and container services on the build host,
// provisioning files and the update agent's configuration on the device.
// A file is one YAML document, parsed into nodes ([Parse]) and decoded
// into a struct that has a field for every key ([Unknown], [Decode], or
// both in [Unmarshal]); every problem is an [*Error] that names the file,
// the line and the field: "file:line: field: what".
//
// A syntax error says the line, and the parser's words only when they are
// one of the parser's fixed messages: unless asked (KeepQuotes), no text
// of the input reaches it, since a provisioning file carries passphrases.
// [Decode] and [Unknown] name what the input says (a key, a value): a
// reader of secrets walks the nodes instead and words its own messages.
package yamlerr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by every [*Error]: the file was read, and what it
// says is wrong.
var ErrInvalid = errors.New("invalid YAML file")

// Error is a problem at one place of a file. Line 0 and an empty Field are
// left out of the message.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string { return format(e.File, e.Line, e.Field, e.Msg) }

// Unwrap gives ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Errors are problems reported together, one a line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives each error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Options say how Parse words a syntax error.
type Options struct {
	// Hint is added to the message: what to do about it.
	Hint string
	// KeepQuotes keeps the parser's message as it is, with the text it
	// quotes from the input (an anchor's name, a tagged value). Without
	// it, the message is one of the parser's fixed messages (known) or
	// none: the file may hold secrets.
	KeepQuotes bool
}

// Parse reads data as one YAML document and returns its top node, nil for
// an empty document (nothing, only comments, or null). A syntax error or a
// second document ('---') is an *Error.
func Parse(file string, data []byte, o Options) (*yaml.Node, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, o.syntaxError(file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &Error{File: file, Line: extra.Line, Msg: "a second YAML document ('---'): want one"}
	case !errors.Is(err, io.EOF):
		return nil, o.syntaxError(file, err)
	}
	if len(root.Content) == 0 {
		return nil, nil
	}
	top := root.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	return top, nil
}

func (o Options) syntaxError(file string, err error) *Error {
	msg := ": " + stripPrefix(err.Error())
	if !o.KeepQuotes {
		msg = fixedMessage(msg[2:])
	}
	msg = "malformed YAML" + msg
	if o.Hint != "" {
		msg += " " + o.Hint
	}
	return &Error{File: file, Line: lineOf(err), Msg: msg}
}

// Decode decodes n into v; the error is an *Error at the (first) line the
// decoder names, with its message.
func Decode(file string, n *yaml.Node, v any) error {
	err := n.Decode(v)
	if err == nil {
		return nil
	}
	msg := stripPrefix(err.Error())
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) == 1 {
		msg = stripPrefix(te.Errors[0]) // its line is the Error's
	}
	return &Error{File: file, Line: lineOf(err), Msg: msg}
}

// Unknown lists the mapping keys under n that the type of v (a struct, or
// a pointer to one) has no yaml field for, in structs, lists and pointers
// nested in it, each named by its path after prefix (e.g. overlays.0.mod)
// with the fields it could have been. Inline structs are followed; the
// keys of maps are not checked.
func Unknown(file string, n *yaml.Node, v any, prefix string) Errors {
	return unknown(file, n, reflect.TypeOf(v), prefix)
}

func unknown(file string, n *yaml.Node, t reflect.Type, prefix string) Errors {
	for t != nil && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		if t.Kind() == reflect.Slice {
			if n.Kind != yaml.SequenceNode {
				return nil // Decode reports the type
			}
			var out Errors
			for i, c := range n.Content {
				out = append(out, unknown(file, c, t.Elem(), join(prefix, strconv.Itoa(i)))...)
			}
			return out
		}
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	yamlFields(t, fields)
	var out Errors
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			out = append(out, &Error{File: file, Line: k.Line, Field: join(prefix, k.Value), Msg: "unknown field (known: " + strings.Join(sortedKeys(fields), ", ") + ")"})
			continue
		}
		out = append(out, unknown(file, v, ft, join(prefix, k.Value))...)
	}
	return out
}

// yamlFields adds the keys of struct t, those of its inline structs
// included, to fields.
func yamlFields(t reflect.Type, fields map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case slices.Contains(strings.Split(opts, ","), "inline") && f.Type.Kind() == reflect.Struct:
			yamlFields(f.Type, fields)
		case name != "" && name != "-":
			fields[name] = f.Type
		}
	}
}

// Unmarshal reads data into v as Parse, Unknown and Decode do: one
// document, no key v has no field for (all of them reported), the values
// decoded. An empty document leaves v as it is.
func Unmarshal(file string, data []byte, v any) error {
	top, err := Parse(file, data, Options{})
	if err != nil || top == nil {
		return err
	}
	if errs := Unknown(file, top, v, ""); len(errs) > 0 {
		return errs
	}
	return Decode(file, top, v)
}

func format(file string, line int, field, msg string) string {
	loc := file
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	if field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, field, msg)
	}
	return fmt.Sprintf("%s: %s", loc, msg)
}

// lineOf is the line number a YAML library error names ("yaml: line 7:
// ..."), 0 when it names none.
func lineOf(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	j := i + 5
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[i+5 : j])
	return n
}

// stripPrefix drops the YAML library's own "yaml: line N:" and "unmarshal
// errors:" prefixes, which the message's place replaces, and puts a list
// of errors on one line.
func stripPrefix(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	if strings.HasPrefix(s, "line ") {
		if i := strings.Index(s, ": "); i > 0 {
			s = s[i+2:]
		}
	}
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	return strings.ReplaceAll(s, "\n  ", "; ")
}

// fixedMessage is ": " and the parser's message when it is one of the
// parser's own fixed texts (known), the same with the quoted name left out
// for a message that quotes an anchor, else "" (the line alone says where).
// What comes out is always text of this file, never of the input.
func fixedMessage(s string) string {
	for _, k := range known {
		if s == k {
			return ": " + k
		}
	}
	for _, q := range quoting {
		if strings.HasPrefix(s, q.prefix) && strings.HasSuffix(s, q.suffix) {
			return ": " + q.say
		}
	}
	return ""
}

// known are the YAML library's syntax error messages that quote nothing
// (go.yaml.in/yaml/v3's scanner and parser problems).
var known = []string{
	"block sequence entries are not allowed in this context",
	"control characters are not allowed",
	"could not find expected ':'",
	"could not find expected directive name",
	"did not find URI escaped octet",
	"did not find expected '!'",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"did not find expected '-' indicator",
	"did not find expected <document start>",
	"did not find expected alphabetic or numeric character",
	"did not find expected comment or line break",
	"did not find expected digit or '.' character",
	"did not find expected hexdecimal number",
	"did not find expected key",
	"did not find expected node content",
	"did not find expected tag URI",
	"did not find expected version number",
	"did not find expected whitespace or line break",
	"did not find expected whitespace",
	"did not find the expected '>'",
	"document contains excessive aliasing",
	"found a tab character that violates indentation",
	"found a tab character where an indentation space is expected",
	"found an incorrect leading UTF-8 octet",
	"found an incorrect trailing UTF-8 octet",
	"found an indentation indicator equal to 0",
	"found character that cannot start any token",
	"found duplicate %TAG directive",
	"found duplicate %YAML directive",
	"found extremely long version number",
	"found incompatible YAML document",
	"found invalid Unicode character escape code",
	"found undefined tag handle",
	"found unexpected document indicator",
	"found unexpected end of stream",
	"found unexpected non-alphabetical character",
	"found unknown directive name",
	"found unknown escape character",
	"incomplete UTF-8 octet sequence",
	"invalid Unicode character",
	"invalid leading UTF-8 octet",
	"invalid length of a UTF-8 sequence",
	"invalid trailing UTF-8 octet",
	"mapping keys are not allowed in this context",
	"mapping values are not allowed in this context",
}

// quoting are the messages that quote the input, and what is said
// instead.
var quoting = []struct{ prefix, suffix, say string }{
	{"unknown anchor '", "' referenced", "unknown anchor … referenced"},
	{"anchor '", "' value contains itself", "an anchor's value contains itself"},
	{"exceeded max depth of ", "", "nested too deep"},
}

func join(prefix, s string) string {
	if prefix == "" {
		return s
	}
	return prefix + "." + s
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
