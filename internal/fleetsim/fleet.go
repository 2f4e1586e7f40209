// Package fleetsim is the scale proof of fleet updates: N simulated
// devices in one process, each running the real update agent
// (updater/agent) over a fake disk and boot loader that model their
// semantics (Part, boottest.Fake), reading the repository over real HTTP
// and reporting with the real reporter (updater/reporter) to a real MQTT
// broker. The clock is injected: the simulation moves it by a poll
// interval per Round, and every device polls once a Round, so waves,
// expiry and the rollout watch see hours pass in seconds.
//
// Its limits: devices poll in lockstep (one Round is every device's poll
// at the same simulated time; the agent's jitter lives in the service
// loop, which is not run); power cuts are not simulated (the agent's
// campaign tests cut at every write); each device's reporter runs
// across its reboots.
package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
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
	polling sync.Map // device name -> true while its Poll runs
	torn    atomic.Int64
}

// Torn is how many polls read a channel document and a signature of two
// different signings (publish re-signed the channel between the two
// reads): each is refused, and the device reads both again at its next
// poll.
func (f *Fleet) Torn() int64 { return f.torn.Load() }

// New flashes N devices with the channel's current release (both slots
// hold its artifacts, as a flashed image does), starts each device's
// reporter and boots it.
func New(ctx context.Context, o Options) (*Fleet, error) {
	if o.Workers <= 0 {
		o.Workers = 32
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
	err = f.each(ctx, func(d *Device) error { return d.powerOn(ctx) })
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

// each runs fn for every device, Workers at a time, and joins the errors.
func (f *Fleet) each(ctx context.Context, fn func(*Device) error) error {
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
	for _, d := range f.Devices {
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

// Round moves the clock by every and has every device poll once.
func (f *Fleet) Round(ctx context.Context, every time.Duration) error {
	f.o.Clock.Advance(every)
	return f.each(ctx, func(d *Device) error {
		f.polling.Store(d.Name, true)
		defer f.polling.Delete(d.Name)
		return d.Poll(ctx)
	})
}

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
