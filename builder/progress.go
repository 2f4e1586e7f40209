package builder

import (
	"fmt"
	"io"
	"time"
)

// StageTime is how long one stage of a build took.
type StageTime struct {
	Name    string        `json:"name"`
	Elapsed time.Duration `json:"elapsed_ns"`
	Note    string        `json:"note,omitempty"`
}

// stages prints "[n/N] name..." when a stage starts and its duration when it
// ends. Durations are for people; nothing that lands in an image reads them.
type stages struct {
	w     io.Writer
	total int
	n     int
	name  string
	start time.Time
	done  []StageTime
}

func (s *stages) begin(name, what string) {
	s.n++
	s.name = name
	s.start = time.Now()
	fmt.Fprintf(s.w, "[%d/%d] %-9s %s\n", s.n, s.total, name, what)
}

func (s *stages) end(note string) {
	d := time.Since(s.start)
	s.done = append(s.done, StageTime{Name: s.name, Elapsed: d, Note: note})
	if note != "" {
		note = " (" + note + ")"
	}
	fmt.Fprintf(s.w, "      %-9s done in %s%s\n", s.name, d.Round(10*time.Millisecond), note)
}
