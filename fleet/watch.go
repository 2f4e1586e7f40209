package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/report"
)

// WatchOptions configure Watch. Current and Halt act on the channel
// where its key lives (package publish); Watch only decides.
type WatchOptions struct {
	Broker  Broker
	Brake   Brake
	Channel string
	// Current returns the channel's current document, verified.
	Current func() (*channel.Document, error)
	// Halt re-signs the channel's document halted.
	Halt func() (*channel.Document, error)
	// Since counts only attempts with this serial or later; 0: the
	// serial of the channel's document when the watch starts. A resume
	// or a new release the watch sees moves it to the new serial.
	Since uint64
	// Once returns after the first halt instead of watching on (for
	// the next release).
	Once bool
	Out  io.Writer
	// Refresh is how often the channel's document is read again at
	// most (0: every second).
	Refresh time.Duration
	Now     func() time.Time // nil: time.Now
}

// watch is a watch's state between two reports.
type watch struct {
	o       WatchOptions
	states  map[string]report.State
	rel     Release
	halted  bool // the current document is halted
	tally   Tally
	outcome map[string]Outcome
	read    time.Time // when the document was last read
	err     error     // a halt that failed: Watch returns it
	done    bool
}

// Watch follows the devices' reports of the channel's current release
// and halts it when the brake says so, printing why to o.Out. It returns
// when ctx ends, after the first halt with Once, or when a halt fails.
func Watch(ctx context.Context, o WatchOptions) error {
	if err := o.Brake.Validate(); err != nil {
		return err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh == 0 {
		o.Refresh = time.Second
	}
	w := &watch{o: o, states: map[string]report.State{}, outcome: map[string]Outcome{}}
	if err := w.readChannel(true); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := Subscribe(ctx, o.Broker, func(ev Event) {
		if w.done {
			return
		}
		w.event(ev)
		if w.done {
			cancel()
		}
	})
	return errors.Join(err, w.err)
}

// readChannel reads the channel's document again, if Refresh has passed
// or force, and starts the tally again when the release changed.
func (w *watch) readChannel(force bool) error {
	now := w.o.Now()
	if !force && now.Sub(w.read) < w.o.Refresh {
		return nil
	}
	w.read = now
	d, err := w.o.Current()
	if err != nil {
		return fmt.Errorf("rollout watch: read channel %s: %w", w.o.Channel, err)
	}
	rel := Release{Channel: w.o.Channel, Image: d.Image, Version: d.Version, Since: w.rel.Since}
	switch {
	case w.rel.Image == "":
		rel.Since = d.Serial
		if w.o.Since > 0 {
			rel.Since = w.o.Since
		}
		fmt.Fprintf(w.o.Out, "watching %s %s on channel %s (serial %d%s), counting attempts from serial %d\n", d.Image, d.Version, d.Channel, d.Serial, haltedNote(d.Halted), rel.Since)
	case rel.Image != w.rel.Image || rel.Version != w.rel.Version:
		rel.Since = d.Serial
		fmt.Fprintf(w.o.Out, "channel %s now offers %s %s (serial %d): watching it\n", d.Channel, d.Image, d.Version, d.Serial)
	case w.halted && !d.Halted:
		rel.Since = d.Serial // resumed: what failed before was judged already
		fmt.Fprintf(w.o.Out, "%s %s resumed at serial %d: counting attempts from it\n", d.Image, d.Version, d.Serial)
	}
	w.halted = d.Halted
	if rel != w.rel {
		w.rel = rel
		w.recount()
	}
	return nil
}

func haltedNote(h bool) string {
	if h {
		return ", halted"
	}
	return ""
}

// recount tallies every report again for w.rel.
func (w *watch) recount() {
	w.tally = Tally{Failed: map[string]string{}}
	w.outcome = map[string]Outcome{}
	for dev, s := range w.states {
		w.count(dev, s)
	}
}

// count moves one device's outcome in the tally to what s says.
func (w *watch) count(dev string, s report.State) (Outcome, string) {
	was := w.outcome[dev]
	now, why := OutcomeOf(w.rel, s)
	switch was {
	case InFlight:
		w.tally.InFlight--
	case Succeeded:
		w.tally.Attempts--
	case Failed:
		w.tally.Attempts--
		delete(w.tally.Failed, dev)
	}
	switch now {
	case InFlight:
		w.tally.InFlight++
	case Succeeded:
		w.tally.Attempts++
	case Failed:
		w.tally.Attempts++
		w.tally.Failed[dev] = why
	}
	w.outcome[dev] = now
	return now, why
}

// event takes one report into the tally and halts the release when the
// brake says so.
func (w *watch) event(ev Event) {
	if ev.Err != nil {
		fmt.Fprintf(w.o.Out, "ignored a report from %s: %v\n", ev.Device, ev.Err)
		return
	}
	if ev.State == nil {
		return
	}
	if err := w.readChannel(false); err != nil {
		fmt.Fprintf(w.o.Out, "%v (judging by the document read before)\n", err)
	}
	w.states[ev.Device] = *ev.State
	was := w.outcome[ev.Device]
	now, why := w.count(ev.Device, *ev.State)
	if now == Failed && was != Failed {
		fmt.Fprintf(w.o.Out, "%s failed %s %s (%s): %d failed of %d attempts\n", ev.Device, w.rel.Image, w.rel.Version, why, len(w.tally.Failed), w.tally.Attempts)
	}
	if w.halted || !w.o.Brake.Judge(w.tally).Halt {
		return
	}
	// Judged again on the document as it is now: another halt, a resume
	// or a new release may have come since it was read.
	if err := w.readChannel(true); err != nil {
		w.err, w.done = err, true
		return
	}
	v := w.o.Brake.Judge(w.tally)
	if w.halted || !v.Halt {
		return
	}
	d, err := w.o.Halt()
	if err != nil {
		w.err = fmt.Errorf("rollout watch: halt %s %s on channel %s (%s): %w", w.rel.Image, w.rel.Version, w.o.Channel, v.Why, err)
		w.done = true
		return
	}
	w.halted = true
	fmt.Fprintf(w.o.Out, "halted %s %s on channel %s at serial %d: %s\n", d.Image, d.Version, d.Channel, d.Serial, v.Why)
	w.done = w.o.Once
}
