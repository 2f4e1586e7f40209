package fleet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pibake/pibake/updater/report"
)

// Limits of a status collection (docs/fleet.md#fleet-status).
const (
	// DefaultQuiet is how long without a new message ends a collection.
	DefaultQuiet = time.Second
	// DefaultMaxWait bounds a collection, however busy the broker: a
	// device that floods its topic cannot keep status waiting.
	DefaultMaxWait = 30 * time.Second
	// DefaultMaxDevices bounds the devices kept; more are counted only.
	DefaultMaxDevices = 100_000
	// OfflineBeats: a device whose last report is older than this many
	// heartbeats is offline.
	OfflineBeats = 3
)

// StatusOptions bound a collection; zero values take the defaults.
type StatusOptions struct {
	Quiet, MaxWait time.Duration
	MaxDevices     int
	Now            func() time.Time
}

// Device is what the broker holds about one device.
type Device struct {
	Name     string        `json:"device"`
	State    *report.State `json:"state,omitempty"`
	Online   *bool         `json:"online,omitempty"`
	Error    string        `json:"error,omitempty"` // its last malformed message
	LastSeen time.Time     `json:"last_seen,omitzero"`
	Offline  string        `json:"offline,omitempty"` // why it is taken as offline
	Messages int           `json:"messages"`          // during the collection
}

// Status is one collection of the fleet's retained reports.
type Status struct {
	Devices []Device `json:"devices"`
	// Dropped counts the devices past MaxDevices, not kept.
	Dropped    int `json:"dropped,omitempty"`
	MaxDevices int `json:"max_devices"`
	// Busy is set when messages kept coming until MaxWait: a device may
	// be flooding its topic (the busiest is named).
	Busy string `json:"busy,omitempty"`
}

// Collect reads the retained reports of every device: it subscribes,
// keeps one entry per device (the latest of each message kind) and stops
// when nothing new came for Quiet (at least five seconds before the first
// message, for the connection), or at MaxWait.
func Collect(ctx context.Context, b Broker, o StatusOptions) (Status, error) {
	o.defaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &collector{o: o, byName: map[string]*Device{}}
	activity := make(chan struct{}, 1)
	go func() {
		wait := max(o.Quiet, 5*time.Second)
		timer := time.NewTimer(wait)
		defer timer.Stop()
		deadline := time.NewTimer(o.MaxWait)
		defer deadline.Stop()
		for {
			select {
			case <-activity:
				timer.Reset(o.Quiet)
			case <-timer.C:
				cancel()
				return
			case <-deadline.C:
				c.busy.Store(true)
				cancel()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	err := Subscribe(ctx, b, func(ev Event) {
		c.add(ev)
		select {
		case activity <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return Status{}, err
	}
	return c.status(), nil
}

func (o *StatusOptions) defaults() {
	if o.Quiet <= 0 {
		o.Quiet = DefaultQuiet
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = DefaultMaxDevices
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// collector keeps one entry per device during a collection.
type collector struct {
	o       StatusOptions
	mu      sync.Mutex
	byName  map[string]*Device
	dropped int
	busy    atomic.Bool
}

// add merges one event into its device's entry.
func (c *collector) add(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name := clip(ev.Device, 128)
	d, ok := c.byName[name]
	if !ok {
		if len(c.byName) >= c.o.MaxDevices {
			c.dropped++
			return
		}
		d = &Device{Name: name}
		c.byName[name] = d
	}
	d.Messages++
	switch {
	case ev.Err != nil:
		d.Error = clip(ev.Err.Error(), 256)
	case ev.State != nil:
		d.State, d.Error = ev.State, ""
	case ev.Online != nil:
		d.Online = ev.Online
	}
}

// status is the collection, sorted by device, each judged online or not.
func (c *collector) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.o.Now()
	s := Status{Devices: make([]Device, 0, len(c.byName)), Dropped: c.dropped, MaxDevices: c.o.MaxDevices}
	busiest := 0
	for _, d := range c.byName {
		judge(d, now)
		s.Devices = append(s.Devices, *d)
		if c.busy.Load() && d.Messages > busiest {
			busiest = d.Messages
			s.Busy = fmt.Sprintf("messages kept coming for %s: %s sent %d (a device flooding its topic?)", c.o.MaxWait, d.Name, d.Messages)
		}
	}
	sort.Slice(s.Devices, func(i, j int) bool { return s.Devices[i].Name < s.Devices[j].Name })
	return s
}

// judge sets when the device was last seen (its report's time, never
// later than now) and whether it is offline: its last will said so, or
// its last report is older than OfflineBeats heartbeats.
func judge(d *Device, now time.Time) {
	if d.State != nil && !d.State.Time.IsZero() {
		d.LastSeen = d.State.Time
		if d.LastSeen.After(now) {
			d.LastSeen = now
		}
	}
	switch {
	case d.Online != nil && !*d.Online:
		d.Offline = "disconnected (its last will)"
	case d.State == nil:
	default:
		beat := time.Duration(d.State.Heartbeat) * time.Second
		if beat <= 0 {
			beat = 15 * time.Minute
		}
		if age := now.Sub(d.LastSeen); age > OfflineBeats*beat {
			d.Offline = fmt.Sprintf("no report for %s (heartbeat %s)", age.Round(time.Minute), beat)
		}
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
