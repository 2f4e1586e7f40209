package main

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// subscriber holds the MQTT session: it connects (retrying while the
// broker is away, so the backend starts in any order), subscribes to the
// topic at QoS 1 on every connect, and hands each message to the queue.
// The session is persistent (clean session off, a fixed client ID): the
// broker keeps the subscription and queues QoS 1 messages while the
// backend is down or restarting.
type subscriber struct {
	client  mqtt.Client
	failing atomic.Bool
}

// subscriberConfig is what newSubscriber needs.
type subscriberConfig struct {
	url, clientID, topic, user, password string
}

func newSubscriber(c subscriberConfig, q *queue, log *slog.Logger) *subscriber {
	s := &subscriber{}
	handle := func(_ mqtt.Client, m mqtt.Message) {
		q.offer(Message{Topic: m.Topic(), Payload: string(m.Payload()), Received: time.Now().UTC()})
	}
	opts := mqtt.NewClientOptions().
		AddBroker(c.url).
		SetClientID(c.clientID).
		SetUsername(c.user).
		SetPassword(c.password).
		SetCleanSession(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetProtocolVersion(4).
		SetOrderMatters(false).
		// A resumed session's queued messages can arrive right after
		// CONNACK, before the subscription below registers its handler:
		// without a default handler paho would acknowledge and drop them.
		SetDefaultPublishHandler(handle).
		SetOnConnectHandler(func(cl mqtt.Client) {
			tok := cl.Subscribe(c.topic, 1, handle)
			s.failing.Store(false)
			log.Info("mqtt connected", "broker", c.url, "topic", c.topic)
			switch {
			case !tok.WaitTimeout(5 * time.Second):
				log.Error("mqtt subscribe: no answer from the broker in 5 s", "topic", c.topic)
			case tok.Error() != nil:
				log.Error("mqtt subscribe failed", "topic", c.topic, "err", tok.Error())
			case refused(tok, c.topic):
				log.Error("mqtt subscribe refused by the broker: check its ACL for this user", "topic", c.topic)
			}
		}).
		SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
			switch n := n.(type) {
			case mqtt.ConnectionNotificationFailed:
				// Once per outage, not once per retry.
				if !s.failing.Swap(true) {
					log.Error("mqtt connect failed; retrying", "broker", c.url, "err", n.Reason, "hint", connectHint(n.Reason))
				}
			case mqtt.ConnectionNotificationLost:
				log.Error("mqtt connection lost; reconnecting", "broker", c.url, "err", n.Reason)
			}
		})
	s.client = mqtt.NewClient(opts)
	return s
}

// start connects in the background.
func (s *subscriber) start() { s.client.Connect() }

// connected reports whether the session is up now.
func (s *subscriber) connected() bool { return s.client.IsConnectionOpen() }

// stop disconnects, giving in-flight work a quarter second.
func (s *subscriber) stop() { s.client.Disconnect(250) }

// refused reports whether the broker answered a subscription with the
// failure code 0x80 (what Mosquitto's ACL can answer).
func refused(tok mqtt.Token, topic string) bool {
	st, ok := tok.(*mqtt.SubscribeToken)
	return ok && st.Result()[topic] == 0x80
}

// connectHint says what to do about a failed connect.
func connectHint(err error) string {
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return "the broker refused our user: check the " + fileMQTTUser + " and " + fileMQTTPassword + " files against its password file"
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return "the broker refused the client ID: set -client-id"
	}
	return "is the broker running and listening there? (-mqtt, EDGE_MQTT)"
}
