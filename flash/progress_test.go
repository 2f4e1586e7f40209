package flash

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	var term, plain bytes.Buffer
	for _, c := range []struct {
		b        *bytes.Buffer
		terminal bool
	}{{&term, true}, {&plain, false}} {
		p := newProgress(c.b, c.terminal, "write", 100<<20)
		p.every = 0
		p.start = time.Now().Add(-time.Second)
		p.add(50 << 20)
		p.done()
	}
	if s := term.String(); !strings.Contains(s, "\r\x1b[K[###############") || !strings.Contains(s, "s left") || !strings.HasSuffix(s, "\n") {
		t.Errorf("terminal progress %q", s)
	}
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || strings.Contains(plain.String(), "\r") || !strings.Contains(lines[0], "50 of 100 MiB") || !strings.Contains(lines[1], "done in") {
		t.Errorf("plain progress %q", plain.String())
	}
}
