package debian

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Stanza is one paragraph of a Debian control file (Packages index,
// dpkg status), with field names as written.
type Stanza struct {
	keys   []string
	values map[string]string
}

// Get returns a field's value ("" if absent); continuation lines are joined with "\n".
func (s Stanza) Get(key string) string { return s.values[strings.ToLower(key)] }

// Keys returns the field names in file order.
func (s Stanza) Keys() []string { return s.keys }

// Set sets a field, keeping the file order for existing ones.
func (s *Stanza) Set(key, value string) {
	if s.values == nil {
		s.values = map[string]string{}
	}
	lk := strings.ToLower(key)
	if _, ok := s.values[lk]; !ok {
		s.keys = append(s.keys, key)
	}
	s.values[lk] = value
}

// WriteTo writes the stanza in control-file syntax followed by a blank line.
func (s Stanza) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, k := range s.keys {
		v := s.values[strings.ToLower(k)]
		b.WriteString(k)
		b.WriteString(":")
		for i, line := range strings.Split(v, "\n") {
			if i > 0 {
				b.WriteString("\n")
				if line == "" {
					line = "."
				}
			}
			if i > 0 || line != "" {
				b.WriteString(" ")
			}
			b.WriteString(line)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// ParseControl reads all stanzas of a control file.
func ParseControl(r io.Reader) ([]Stanza, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var out []Stanza
	var cur Stanza
	var last string
	line := 0
	flush := func() {
		if len(cur.keys) > 0 {
			out = append(out, cur)
		}
		cur, last = Stanza{}, ""
	}
	for sc.Scan() {
		line++
		t := sc.Text()
		switch {
		case strings.TrimSpace(t) == "":
			flush()
		case t[0] == ' ' || t[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("control line %d: continuation line without a field", line)
			}
			lk := strings.ToLower(last)
			cur.values[lk] += "\n" + strings.TrimSpace(t)
		case t[0] == '#':
		default:
			k, v, ok := strings.Cut(t, ":")
			if !ok {
				return nil, fmt.Errorf("control line %d: %q is not a field", line, t)
			}
			cur.Set(k, strings.TrimSpace(v))
			last = k
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read control file: %w", err)
	}
	flush()
	return out, nil
}
