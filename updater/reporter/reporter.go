// Package reporter is the agent's side of fleet reporting: it publishes
// the device's report (package updater/report) to the team's MQTT broker,
// retained at QoS 1, on every change and as a heartbeat, with the online
// flag "1" and a last will "0".
//
// It never delays or blocks an update: the agent only calls Notify, a
// send that never waits; the publisher's own goroutine takes the latest
// state (Options.Snapshot) when it can send it. Nothing is queued: while
// the broker is unreachable, refuses the credentials or answers garbage,
// the publisher retries with a growing pause (logging each kind of
// error once an hour), and when it gets through it sends the state as it is then. A
// device offline for days reports its latest state when it comes back,
// never a backlog, and its memory stays bounded (one state).
//
// It subscribes to nothing, so nothing the broker sends is acted on.
package reporter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/updater/config"
	"github.com/pibake/pibake/updater/report"
)

// Options configure a Publisher.
type Options struct {
	Report      config.Report
	Credentials config.Credentials
	// Snapshot returns the state to report now; the publisher calls it
	// from its own goroutine, never from Notify's caller.
	Snapshot func() report.State
	Log      *slog.Logger
	// MaxPause bounds the pause between connection attempts (default
	// 5 min); Timeout bounds each exchange with the broker (default 20 s).
	MaxPause, Timeout time.Duration
	// ClientID is the MQTT client id (default the user name).
	ClientID string
	// Heartbeat, when set, replaces the report block's heartbeat, without
	// its one-minute floor (tests, simulations).
	Heartbeat time.Duration
}

// Publisher sends the device's reports; Start makes one.
type Publisher struct {
	opts   Options
	kick   chan struct{}
	fresh  atomic.Bool // a (re)connection happened: send the flag and the state again
	prefix string
	warned onceLog
}

// onceLog logs each kind of warning at most once an hour: a broker that
// refuses the device, answers garbage or keeps dropping it is said once,
// not at every retry (the addresses in the errors change each time).
type onceLog struct {
	mu   sync.Mutex
	said map[string]time.Time
}

// warnEvery is how often one kind of warning may be logged again.
const warnEvery = time.Hour

func (o *onceLog) warn(log *slog.Logger, msg string, err error, args ...any) {
	o.mu.Lock()
	now := time.Now()
	last, seen := o.said[msg]
	fresh := !seen || now.Sub(last) >= warnEvery
	if fresh {
		if o.said == nil {
			o.said = map[string]time.Time{}
		}
		o.said[msg] = now
	}
	o.mu.Unlock()
	if fresh {
		log.Warn(msg, append(args, "err", err)...)
	}
}

// Start checks the options and starts the publisher's goroutine, which
// ends with ctx (sending the online flag "0" on its way out, if it can
// within a second).
func Start(ctx context.Context, o Options) (*Publisher, error) {
	if err := o.Report.Validate(); err != nil {
		return nil, err
	}
	if err := o.Credentials.Validate("broker credentials"); err != nil {
		return nil, err
	}
	if err := report.CheckDevice(o.Credentials.User); err != nil {
		return nil, fmt.Errorf("broker credentials: %w", err)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxPause <= 0 {
		o.MaxPause = 5 * time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	p := &Publisher{opts: o, kick: make(chan struct{}, 1), prefix: o.Report.Prefix}
	if p.prefix == "" {
		p.prefix = report.DefaultPrefix
	}
	mo, err := p.clientOptions()
	if err != nil {
		return nil, err
	}
	go p.run(ctx, mqtt.NewClient(mo))
	return p, nil
}

// Notify tells the publisher that the state may have changed. It never
// waits: notifications that come while one is pending are one.
func (p *Publisher) Notify() {
	if p == nil {
		return
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Publisher) clientOptions() (*mqtt.ClientOptions, error) {
	o := p.opts
	id := o.ClientID
	if id == "" {
		id = o.Credentials.User
	}
	mo := mqtt.NewClientOptions().AddBroker(o.Report.Broker).SetClientID(id).
		SetUsername(o.Credentials.User).SetPassword(o.Credentials.Password).
		SetCleanSession(true).SetProtocolVersion(4).
		SetAutoReconnect(true).SetMaxReconnectInterval(o.MaxPause).SetConnectRetry(false).
		SetConnectTimeout(o.Timeout).SetWriteTimeout(o.Timeout).SetKeepAlive(60*time.Second).
		SetWill(report.OnlineTopic(p.prefix, o.Credentials.User), "0", 1, true).
		SetOnConnectHandler(func(mqtt.Client) { p.fresh.Store(true); p.Notify() }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.warned.warn(o.Log, "report: lost the broker; reconnecting", err, "broker", o.Report.Broker)
		})
	if o.Report.CA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(o.Report.CA)) {
			return nil, errors.New("report: ca holds no PEM certificate")
		}
		mo.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return mo, nil
}

// run connects (again and again, with a growing pause, until the first
// connection; paho reconnects after that) and sends the state when it
// changes, on every (re)connection and at each heartbeat.
func (p *Publisher) run(ctx context.Context, c mqtt.Client) {
	log := p.opts.Log
	every := p.opts.Heartbeat
	if every <= 0 {
		every = heartbeat(p.opts.Report)
	}
	beat := time.NewTicker(every)
	defer beat.Stop()
	defer p.goodbye(c)
	pause := time.Second
	var sent *report.State
	for {
		if !c.IsConnected() {
			err := wait(c.Connect(), p.opts.Timeout+5*time.Second)
			if err != nil {
				p.warned.warn(log, "report: cannot reach the broker; updates go on, the state is sent when it answers", err, "broker", p.opts.Report.Broker)
				if !sleep(ctx, pause) {
					return
				}
				pause = min(2*pause, p.opts.MaxPause)
				continue
			}
			log.Info("report: connected", "broker", p.opts.Report.Broker, "device", p.opts.Credentials.User)
			pause = time.Second
		}
		if c.IsConnectionOpen() {
			s, err := p.send(c, sent)
			sent = s
			if err != nil {
				p.warned.warn(log, "report: send", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-beat.C:
			sent = nil // a heartbeat sends even an unchanged state
		}
	}
}

// send publishes the state unless it is the one sent last (time aside),
// and the online flag after a (re)connection. It returns the state the
// broker has now.
func (p *Publisher) send(c mqtt.Client, last *report.State) (*report.State, error) {
	user := p.opts.Credentials.User
	fresh := p.fresh.Swap(false)
	s := p.opts.Snapshot()
	s.Device = user
	if !fresh && last != nil && same(*last, s) {
		return last, nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return last, err
	}
	if err := wait(c.Publish(report.StateTopic(p.prefix, user), 1, true, b), p.opts.Timeout); err != nil {
		p.fresh.Store(fresh)
		return last, fmt.Errorf("publish the state: %w", err)
	}
	if fresh {
		if err := wait(c.Publish(report.OnlineTopic(p.prefix, user), 1, true, "1"), p.opts.Timeout); err != nil {
			p.fresh.Store(true)
			return &s, fmt.Errorf("publish the online flag: %w", err)
		}
	}
	return &s, nil
}

// goodbye says "0" and disconnects, bounded to about a second: the
// service is stopping (a reboot into an update, a shutdown).
func (p *Publisher) goodbye(c mqtt.Client) {
	if c.IsConnectionOpen() {
		_ = wait(c.Publish(report.OnlineTopic(p.prefix, p.opts.Credentials.User), 1, true, "0"), time.Second)
	}
	c.Disconnect(250)
}

func same(a, b report.State) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func wait(tok mqtt.Token, d time.Duration) error {
	if !tok.WaitTimeout(d) {
		return fmt.Errorf("no answer from the broker in %s", d)
	}
	return tok.Error()
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
