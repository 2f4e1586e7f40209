package service

import (
	"strings"
	"testing"
)

func TestSafeText(t *testing.T) {
	var b strings.Builder
	safeText{&b}.Write([]byte("last error: GET x: HTTP 500 \x1b]0;pwned\x07\x1b[2J\u009b6n ok\tübel\n"))
	if got := b.String(); got != "last error: GET x: HTTP 500 ?]0;pwned??[2J?6n ok\tübel\n" {
		t.Errorf("%q", got)
	}
}
