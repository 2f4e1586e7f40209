// Package fleet is the operator's side of device reports: it follows the
// team's MQTT broker and turns what devices wrote there (package
// updater/report) into events for `pibake fleet` and `pibake rollout
// watch`. Reports are not trusted: a malformed one becomes an event with
// its error, shown and never acted on.
package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pibake/pibake/updater/report"
)

// Broker says how to reach the team's broker as an operator.
type Broker struct {
	URL      string // tcp://HOST:1883, or ssl://HOST:8883 (also mqtts://) for TLS
	CAFile   string // PEM certificates the broker's TLS certificate must chain to; empty: the system's
	Username string
	Password string
	ClientID string // empty: one made from the process
	Prefix   string // topic prefix; empty: report.DefaultPrefix
}

// Event is one message from the broker about one device: a State, an
// online flag, or the error that made its message unusable.
type Event struct {
	Device string
	State  *report.State
	Online *bool
	Err    error
}

// Subscribe connects to the broker, subscribes to every device's topics
// and calls fn for each message (the retained ones first) until ctx ends.
// fn is called from one goroutine at a time. It returns an error when the
// first connection fails; later losses are retried in the background.
func Subscribe(ctx context.Context, b Broker, fn func(Event)) error {
	opts, err := b.options()
	if err != nil {
		return err
	}
	prefix := b.prefix()
	events := make(chan Event, 256)
	handle := func(_ mqtt.Client, m mqtt.Message) {
		ev := decode(prefix, m.Topic(), m.Payload())
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	}
	subErr := make(chan error, 1)
	opts.SetDefaultPublishHandler(handle).SetOnConnectHandler(func(c mqtt.Client) {
		tok := c.Subscribe(report.Subscription(prefix), 1, handle)
		err := waitToken(tok, "subscribe to "+report.Subscription(prefix))
		if st, ok := tok.(*mqtt.SubscribeToken); err == nil && ok && st.Result()[report.Subscription(prefix)] == 0x80 {
			err = fmt.Errorf("the broker at %s refused the subscription to %s: give this user read access to it in the broker's ACL", b.URL, report.Subscription(prefix))
		}
		select {
		case subErr <- err:
		default:
		}
	})
	c := mqtt.NewClient(opts)
	if err := waitToken(c.Connect(), "connect to "+b.URL); err != nil {
		return err
	}
	defer c.Disconnect(250)
	select {
	case err := <-subErr:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return nil
	}
	for {
		select {
		case ev := <-events:
			fn(ev)
		case <-ctx.Done():
			return nil
		}
	}
}

func (b Broker) prefix() string {
	if b.Prefix == "" {
		return report.DefaultPrefix
	}
	return b.Prefix
}

func (b Broker) options() (*mqtt.ClientOptions, error) {
	if b.URL == "" {
		return nil, errors.New("no broker: give its URL (tcp://HOST:1883 or ssl://HOST:8883)")
	}
	id := b.ClientID
	if id == "" {
		id = fmt.Sprintf("pibake-fleet-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	}
	opts := mqtt.NewClientOptions().AddBroker(b.URL).SetClientID(id).
		SetUsername(b.Username).SetPassword(b.Password).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second).SetProtocolVersion(4).SetOrderMatters(true)
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("broker CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker CA %s: no PEM certificate in it", b.CAFile)
		}
		opts.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return opts, nil
}

func waitToken(tok mqtt.Token, what string) error {
	if !tok.WaitTimeout(15 * time.Second) {
		return fmt.Errorf("%s: no answer in 15 s: check the URL and that the broker runs", what)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("%s: %w (check the user, password and CA)", what, err)
	}
	return nil
}

// decode turns one message into an event.
func decode(prefix, topic string, payload []byte) Event {
	device, kind, err := report.SplitTopic(prefix, topic)
	if err != nil {
		return Event{Device: topic, Err: err}
	}
	ev := Event{Device: device}
	switch kind {
	case "online":
		on := string(payload) == "1"
		if !on && string(payload) != "0" {
			ev.Err = fmt.Errorf("%w from %s: online flag %.16q", report.ErrMalformed, device, payload)
			return ev
		}
		ev.Online = &on
	default:
		s, err := report.Parse(device, payload)
		if err != nil {
			ev.Err = err
			return ev
		}
		ev.State = &s
	}
	return ev
}
