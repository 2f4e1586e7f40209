// Package fleetsim is the scale proof of fleet updates: N simulated
// devices in one process, each running the real update agent
// (updater/agent) over a fake disk and boot loader that model their
// semantics (Part, boottest.Fake), reading the repository over real HTTP
// from pibake serve's server (internal/reposerve, with its ETags and
// 304s) and reporting with the real reporter (updater/reporter) to a
// real MQTT broker. The clock is injected and moves a minute at a time
// (Round); each device polls on the service's schedule (its first poll
// service.FirstPollAfter after a boot, then service.NextPoll: the interval
// with the device's own jitter), at its own time, which its agent reads,
// so waves, expiry and the rollout watch see hours pass in seconds.
//
// Its limits: the service's loop itself is not run (its schedule is,
// and a poll is the agent's Update and the boot that follows it, not its
// watchdog or configuration reloads); power cuts are not simulated (the
// agent's campaign tests cut at every write); each device's reporter
// runs across its reboots.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"aead.dev/minisign"
	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install/installtest"
	"github.com/pibake/pibake/updater/reporter"
)

// Options say what fleet to simulate.
type Options struct {
	N int
	// URL is the update repository's address; Client reads it (shared
	// by the devices: the simulation's network, not a device's).
	URL    string
	Client *http.Client
	// Repo is the repository folder the devices are flashed from (the
	// channel's current release).
	Repo    string
	Trusted []minisign.PublicKey
	Clock   *installtest.Clock
	// Flashed is the version the devices were flashed with; Built the
	// image's build time.
	Flashed string
	Built   time.Time
	// Bad are versions whose health check fails on every device.
	Bad []string
	// Report is each device's report block (broker, heartbeat);
	// Password gives each device's broker password.
	Report   config.Report
	Password func(device string) string
	// Poll is the devices' poll interval (default 15 minutes, the
	// agent's default).
	Poll time.Duration
	// Workers poll devices at once (default 32); Deadline bounds the
	// health checks (default a minute); Backoff is the first pause
	// between download attempts (default 10 ms).
	Workers  int
	Deadline time.Duration
	Backoff  time.Duration
	// MaxPause bounds each reporter's pause between connection attempts
	// (default 2 s: a broker restart is seen within seconds).
	MaxPause time.Duration
	Log      *slog.Logger
}

// Fleet is the running simulation.
type Fleet struct {
	o       Options
	Devices []*Device
	polling sync.Map // device name -> true while its poll runs
	torn    atomic.Int64
	polls   atomic.Int64
	// minutes holds the number of polls in each minute Round ran.
	minutes []int
}

// Torn is how many polls read a channel document and a signature of two
// different signings (publish re-signed the channel between the two
// reads) twice, the agent's second reading included: each is refused,
// and the device reads both again at its next poll.
func (f *Fleet) Torn() int64 { return f.torn.Load() }

// New flashes N devices with the channel's current release (both slots
// hold its artifacts, as a flashed image does), starts each device's
// reporter and boots it.
func New(ctx context.Context, o Options) (*Fleet, error) {
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Poll <= 0 {
		o.Poll = 15 * time.Minute
	}
	if o.Deadline <= 0 {
		o.Deadline = time.Minute
	}
	if o.Backoff <= 0 {
		o.Backoff = 10 * time.Millisecond
	}
	if o.MaxPause <= 0 {
		o.MaxPause = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	doc, err := flashedRelease(o)
	if err != nil {
		return nil, err
	}
	f := &Fleet{o: o}
	blobs := map[string][]byte{}
	for _, a := range doc.ArtifactsFor(Board) {
		b, err := os.ReadFile(filepath.Join(o.Repo, filepath.FromSlash(a.Path)))
		if err != nil {
			return nil, fmt.Errorf("fleetsim: flash %s: %w", a.Name, err)
		}
		blobs[a.Name] = b
	}
	var size [2]int64
	for _, a := range doc.ArtifactsFor(Board) {
		i := map[bool]int{true: 1, false: 0}[a.Name == "root"]
		size[i] = a.PartitionSize
	}
	for i := range o.N {
		d := newDevice(f, i+1)
		for _, s := range bootchain.Slots() {
			d.parts[s] = [2]*Part{NewPart(size[0], blobs["boot"]), NewPart(size[1], blobs["root"])}
		}
		d.pub, err = reporter.Start(ctx, reporter.Options{
			Report: o.Report, Credentials: config.Credentials{User: d.Name, Password: o.Password(d.Name)},
			Snapshot: d.Report, Log: o.Log, MaxPause: o.MaxPause, Timeout: 10 * time.Second,
		})
		if err != nil {
			return nil, fmt.Errorf("fleetsim: %s: %w", d.Name, err)
		}
		f.Devices = append(f.Devices, d)
	}
	now := o.Clock.Now()
	err = f.each(ctx, f.Devices, func(d *Device) error { return d.powerOn(ctx, now) })
	return f, err
}

// flashedRelease is the channel's current document, which must offer the
// version the devices are flashed with.
func flashedRelease(o Options) (*channel.Document, error) {
	base := filepath.Join(o.Repo, filepath.FromSlash(channel.DocumentPath(Channel)))
	doc, err := os.ReadFile(base)
	if err != nil {
		return nil, fmt.Errorf("fleetsim: publish the flashed release first: %w", err)
	}
	sig, err := os.ReadFile(channel.SignaturePath(base))
	if err != nil {
		return nil, fmt.Errorf("fleetsim: %w", err)
	}
	d, err := channel.Verify(doc, sig, channel.Check{Trusted: o.Trusted, Board: Board, Channel: Channel, Image: Image, Now: o.Clock.Now()})
	if err != nil {
		return nil, fmt.Errorf("fleetsim: the flashed release: %w", err)
	}
	if d.Version != o.Flashed {
		return nil, fmt.Errorf("fleetsim: the channel offers %s, the devices are flashed with %s", d.Version, o.Flashed)
	}
	return d, nil
}

// each runs fn for every device of devs, Workers at a time, and joins
// the errors.
func (f *Fleet) each(ctx context.Context, devs []*Device, fn func(*Device) error) error {
	work := make(chan *Device)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range f.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				if err := fn(d); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for _, d := range devs {
		select {
		case work <- d:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("and %d more", len(errs)-10))
	}
	return errors.Join(errs...)
}

// Round moves the clock on by every, a minute at a time. In each
// minute the devices whose next poll falls in it poll (Workers at a
// time, in the order of their times), each at its own time; the clock
// reads the minute's start meanwhile (a document signed then is never
// from a device's future) and its end after.
func (f *Fleet) Round(ctx context.Context, every time.Duration) error {
	var errs []error
	for left := every; left > 0 && ctx.Err() == nil; left -= time.Minute {
		step := min(left, time.Minute)
		end := f.o.Clock.Now().Add(step)
		var due []*Device
		for _, d := range f.Devices {
			if !d.next.After(end) {
				due = append(due, d)
			}
		}
		slices.SortFunc(due, func(a, b *Device) int { return a.next.Compare(b.next) })
		polls := f.polls.Load()
		err := f.each(ctx, due, func(d *Device) error {
			f.polling.Store(d.Name, true)
			defer f.polling.Delete(d.Name)
			for !d.next.After(end) {
				if err := d.poll(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
		f.o.Clock.Advance(step)
		f.minutes = append(f.minutes, int(f.polls.Load()-polls))
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and errors in %d more minutes", len(errs)-3))
	}
	return errors.Join(errs...)
}

// Turn runs Round until every device has polled at least once since
// the call (its next poll, known now, has come): a turn of the fleet.
func (f *Fleet) Turn(ctx context.Context) error {
	now := f.o.Clock.Now()
	last := now
	for _, d := range f.Devices {
		if d.next.After(last) {
			last = d.next
		}
	}
	minutes := max(1, (last.Sub(now)+time.Minute-1)/time.Minute)
	return f.Round(ctx, minutes*time.Minute)
}

// Polls is how many polls the devices made so far.
func (f *Fleet) Polls() int64 { return f.polls.Load() }

// Minutes are the polls in each minute Round ran, in order.
func (f *Fleet) Minutes() []int { return slices.Clone(f.minutes) }

// Polling names the devices whose poll is in progress now: a halt signed
// now does not reach those that already read the channel's document.
func (f *Fleet) Polling() []string {
	var out []string
	f.polling.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	return out
}

// Running counts the devices by the version their booted slot runs
// ("as flashed" for a slot never updated).
func (f *Fleet) Running() map[string]int {
	n := map[string]int{}
	for _, d := range f.Devices {
		n[d.Report().Version]++
	}
	return n
}
