// Package yamlerr holds what the strict YAML readers of pibake (image
// definitions on the build host, provisioning files on the device) share
// about their errors: one message shape, "file:line: field: what", and
// the line number taken out of a YAML library error.
package yamlerr

import (
	"fmt"
	"strconv"
	"strings"
)

// Format is the message of an error at one place of a file; line 0 and an
// empty field are left out.
func Format(file string, line int, field, msg string) string {
	loc := file
	if line > 0 {
		loc += ":" + strconv.Itoa(line)
	}
	if field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, field, msg)
	}
	return fmt.Sprintf("%s: %s", loc, msg)
}

// Line is the line number a YAML library error names ("yaml: line 7: ..."),
// 0 when it names none.
func Line(err error) int {
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

// StripPrefix drops the YAML library's own "yaml: line N:" and
// "unmarshal errors:" prefixes, which Format replaces, and puts a list of
// errors on one line.
func StripPrefix(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	if strings.HasPrefix(s, "line ") {
		if i := strings.Index(s, ": "); i > 0 {
			s = s[i+2:]
		}
	}
	s = strings.TrimPrefix(s, "unmarshal errors:\n  ")
	return strings.ReplaceAll(s, "\n  ", "; ")
}
