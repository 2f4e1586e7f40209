package yamlerr

import (
	"errors"
	"testing"
)

func TestFormatAndLine(t *testing.T) {
	for _, c := range []struct {
		line        int
		field, want string
	}{{7, "wifi.country", "f.yaml:7: wifi.country: bad"}, {0, "hostname", "f.yaml: hostname: bad"}, {3, "", "f.yaml:3: bad"}} {
		if got := Format("f.yaml", c.line, c.field, "bad"); got != c.want {
			t.Errorf("Format(%d, %q) = %q, want %q", c.line, c.field, got, c.want)
		}
	}
	if n := Line(errors.New("yaml: line 12: mapping values are not allowed")); n != 12 {
		t.Errorf("Line = %d", n)
	}
	if n := Line(errors.New("no place")); n != 0 {
		t.Errorf("Line without a line = %d", n)
	}
	if s := StripPrefix("yaml: unmarshal errors:\n  line 3: a\n  line 4: b"); s != "line 3: a; line 4: b" {
		t.Errorf("StripPrefix = %q", s)
	}
}
