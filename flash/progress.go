package flash

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress reports bytes done of a total: a redrawn bar on a terminal,
// a plain line every few seconds otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	what     string
	total, n int64
	start    time.Time
	last     time.Time
	every    time.Duration
}

func newProgress(w io.Writer, terminal bool, what string, total int64) *progress {
	every := 5 * time.Second
	if terminal {
		every = 200 * time.Millisecond
	}
	now := time.Now()
	return &progress{w: w, terminal: terminal, what: what, total: total, start: now, last: now, every: every}
}

func (p *progress) add(n int64) {
	p.n += n
	if p.w == nil {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.print(false)
	}
}

func (p *progress) done() {
	if p.w != nil {
		p.print(true)
	}
}

func (p *progress) print(final bool) {
	el := time.Since(p.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(p.n) / s
	}
	pct := 100.0
	if p.total > 0 {
		pct = float64(p.n) * 100 / float64(p.total)
	}
	left := "--"
	if rate > 0 && p.total > p.n {
		left = time.Duration(float64(p.total-p.n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	if final {
		left = "done in " + el.Round(100*time.Millisecond).String()
	} else {
		left += " left"
	}
	line := fmt.Sprintf("%-6s %4.0f%%  %d of %d MiB  %.1f MB/s  %s", p.what, pct, p.n>>20, p.total>>20, rate/1e6, left)
	if p.terminal {
		const width = 30
		fill := int(pct / 100 * width)
		fill = min(max(fill, 0), width)
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %s%s", strings.Repeat("#", fill), strings.Repeat(" ", width-fill), line, end)
		return
	}
	fmt.Fprintln(p.w, "flash: "+line)
}
