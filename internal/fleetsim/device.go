package fleetsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pibake/pibake/bootchain"
	"github.com/pibake/pibake/updater/agent"
	"github.com/pibake/pibake/updater/bootloader/boottest"
	"github.com/pibake/pibake/updater/channel"
	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/install"
	"github.com/pibake/pibake/updater/report"
	"github.com/pibake/pibake/updater/reporter"
	"github.com/pibake/pibake/updater/service"
	"github.com/pibake/pibake/updater/state"
	"github.com/pibake/pibake/updater/state/statetest"
)

// Device is one simulated Pi: two slots of boot and root partitions, the
// U-Boot chain's state (boottest.Fake: the boot script's semantics at
// each power-on), the agent's state and bootsel's kept documents, and
// its reporter, which runs for the whole simulation (a real device's
// restarts with the service at each reboot: one more online flag and
// state per reboot).
type Device struct {
	Name string // the broker user and topic level
	ID   string // the machine-id that places it in a rollout

	f     *Fleet
	boot  *boottest.Fake
	keep  statetest.Keep
	parts map[bootchain.Slot][2]*Part // boot, root

	mu       sync.Mutex // the state and the booted slot, read by the reporter's goroutine
	st       statetest.Memory
	booted   bootchain.Slot
	pub      *reporter.Publisher
	rebooted bool
	boots    int

	// The service's schedule: the device's next poll, by the simulated
	// clock, and the number of its last; the copies of the channel's
	// files its conditional requests keep (the service's Source).
	next  time.Time
	turn  int
	cache *install.Cache
}

// DeviceName is the name of the fleet's device number i (from 1).
func DeviceName(i int) string { return fmt.Sprintf("sim-%05d", i) }

func newDevice(f *Fleet, i int) *Device {
	name := DeviceName(i)
	sum := sha256.Sum256([]byte(name))
	return &Device{Name: name, ID: hex.EncodeToString(sum[:16]), f: f, boot: boottest.NewFake(), parts: map[bootchain.Slot][2]*Part{}, cache: &install.Cache{}}
}

// lockedStore is the device's state store as the agent and the reporter
// share it: every save tells the reporter (as the service's does).
type lockedStore struct{ d *Device }

func (s lockedStore) Load() (state.State, error) {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	return s.d.st.Load()
}

func (s lockedStore) Save(st state.State) error {
	s.d.mu.Lock()
	err := s.d.st.Save(st)
	s.d.mu.Unlock()
	s.d.pub.Notify()
	return err
}

// health is the release's health check: it reads the booted root
// partition and fails on a release the fleet calls bad.
type health struct{ d *Device }

func (health) Name() string { return "app.service" }

func (h health) Run(context.Context) error {
	root := h.d.parts[h.d.booted][1]
	for _, v := range h.d.f.o.Bad {
		if RootHolds(root, v) {
			return fmt.Errorf("failed to start (%s %s is the simulation's bad release)", Image, v)
		}
	}
	return nil
}

// agent is the device's agent for its booted slot at the simulated time
// at: the real updater/agent over the fakes, reading the repository over
// HTTP with conditional requests for the channel's files.
func (d *Device) agent(at time.Time) *agent.Agent {
	o := d.f.o
	return agent.New(agent.Config{
		Channel: Channel, Image: Image, Version: o.Flashed, Built: o.Built, Board: Board,
		Trusted: o.Trusted, DeviceID: d.ID, Checks: []agent.Check{health{d}}, Deadline: o.Deadline,
		Download: agent.Download{Attempts: 3, Backoff: o.Backoff},
	}, agent.Ports{
		Boot: d.boot, Store: lockedStore{d}, Keep: &d.keep,
		Source: install.HTTP{Base: o.URL, Client: o.Client, Cache: d.cache}, Booted: d.booted,
		Slots: func(s bootchain.Slot) (install.Target, install.Target, error) {
			p := d.parts[s]
			return p[0], p[1], nil
		},
		Running: func(s bootchain.Slot) (agent.Readable, agent.Readable, error) {
			p := d.parts[s]
			return p[0], p[1], nil
		},
		Reboot: func() error { d.rebooted = true; return nil },
		Now:    func() time.Time { return at },
	})
}

// powerOn runs the boot script at the simulated time at and settles the
// boot, as the service's start does; a settle that reboots (a failed
// trial) powers on again. The first poll comes service.FirstPollAfter
// later.
func (d *Device) powerOn(ctx context.Context, at time.Time) error {
	d.next, d.turn = at.Add(service.FirstPollAfter(d.f.o.Poll, d.ID)), 0
	for range 4 {
		d.rebooted = false
		s := d.boot.PowerOn()
		d.mu.Lock()
		d.booted = s
		d.boots++
		d.mu.Unlock()
		if err := d.agent(at).AfterBoot(ctx); err != nil {
			return fmt.Errorf("%s: after boot: %w", d.Name, err)
		}
		d.pub.Notify()
		if !d.rebooted {
			return nil
		}
	}
	return fmt.Errorf("%s: still rebooting after 4 boots", d.Name)
}

// poll is one turn of the service loop, at the device's next poll: the
// agent's Update, the reboot into a trial it asks for with the trial's
// boot, and the next poll scheduled by service.NextPoll from the
// Update's outcome, as the service's loop does.
func (d *Device) poll(ctx context.Context) error {
	at := d.next
	d.rebooted = false
	err := d.agent(at).Update(ctx)
	d.pub.Notify()
	var waiting *state.Waiting
	if errors.Is(err, agent.ErrWaiting) {
		waiting = d.State().Waiting
	}
	d.f.polls.Add(1)
	if d.rebooted {
		// The service starts again with the boot: its first poll comes
		// service.FirstPollAfter after it (powerOn).
		return d.powerOn(ctx, at)
	}
	d.turn++
	d.next = at.Add(service.NextPoll(d.f.o.Poll, d.ID, d.turn, err, waiting, at))
	switch {
	case err == nil, errors.Is(err, agent.ErrNothingNew), errors.Is(err, agent.ErrNotInRollout),
		errors.Is(err, agent.ErrHalted), errors.Is(err, agent.ErrFailedBefore), errors.Is(err, agent.ErrWaiting):
		return nil
	case errors.Is(err, channel.ErrSignature):
		// The document and its signature are two files: a poll that
		// reads the old document and the new signature while publish
		// re-signs the channel, and again a second later, is refused,
		// and the next poll reads both new. Counted, not a failure of
		// the simulation.
		d.f.torn.Add(1)
		return nil
	}
	return fmt.Errorf("%s: update: %w", d.Name, err)
}

// Report is what the device's reporter sends now.
func (d *Device) Report() report.State {
	d.mu.Lock()
	st, _ := d.st.Load()
	booted := d.booted
	d.mu.Unlock()
	o := d.f.o
	cfg := config.Config{Channel: Channel, Image: Image, Version: o.Flashed, Board: Board, Report: &o.Report}
	s := reporter.Snapshot(reporter.Device{Name: d.Name, Config: cfg, Booted: string(booted)}, st, o.Clock.Now())
	s.Device = d.Name
	return s
}

// State is the device's agent state now.
func (d *Device) State() state.State {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, _ := d.st.Load()
	return st
}

// Boots is how many times the device was powered on.
func (d *Device) Boots() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.boots
}
