package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
)

// Message is one MQTT message as stored in Redis and served as JSON.
// Payloads are kept as text (invalid UTF-8 becomes U+FFFD in JSON).
type Message struct {
	Topic    string    `json:"topic"`
	Payload  string    `json:"payload"`
	Received time.Time `json:"received"`
}

// store keeps the newest messages in one Redis list, newest first.
type store struct {
	redis *redisClient
	key   string
	keep  int
}

// push stores m and trims the list to the newest s.keep.
func (s *store) push(ctx context.Context, m Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	replies, err := s.redis.do(ctx,
		[]string{"LPUSH", s.key, string(b)},
		[]string{"LTRIM", s.key, "0", strconv.Itoa(s.keep - 1)})
	if err != nil {
		return err
	}
	return replyErr(replies, "LPUSH "+s.key)
}

// recent returns up to n of the newest messages, newest first.
func (s *store) recent(ctx context.Context, n int) ([]Message, error) {
	replies, err := s.redis.do(ctx, []string{"LRANGE", s.key, "0", strconv.Itoa(n - 1)})
	if err != nil {
		return nil, err
	}
	if err := replyErr(replies, "LRANGE "+s.key); err != nil {
		return nil, err
	}
	items, ok := replies[0].([]any)
	if !ok && replies[0] != nil {
		return nil, fmt.Errorf("redis LRANGE %s: got %T, want a list: is %s a list?", s.key, replies[0], s.key)
	}
	out := make([]Message, 0, len(items))
	for i, it := range items {
		var m Message
		str, _ := it.(string)
		if err := json.Unmarshal([]byte(str), &m); err != nil {
			return nil, fmt.Errorf("redis %s[%d]: not a stored message: %w", s.key, i, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// ping checks that Redis answers and accepts our password.
func (s *store) ping(ctx context.Context) error {
	replies, err := s.redis.do(ctx, []string{"PING"})
	if err != nil {
		return err
	}
	return replyErr(replies, "PING")
}

func replyErr(replies []any, what string) error {
	for _, r := range replies {
		if e, ok := r.(redisError); ok {
			return fmt.Errorf("redis %s: %w", what, e)
		}
	}
	return nil
}

// queue carries messages from the MQTT client to Redis. The MQTT side
// never blocks: while Redis is away, up to cap(ch) messages wait here
// and the oldest are dropped (and counted) beyond that. Waiting messages
// are in memory only: a restart loses them.
type queue struct {
	ch      chan Message
	pending atomic.Int64 // in the channel or being written
	dropped atomic.Int64
}

func newQueue(size int) *queue { return &queue{ch: make(chan Message, size)} }

// offer enqueues m, dropping the oldest waiting message when full.
func (q *queue) offer(m Message) {
	q.pending.Add(1)
	for {
		select {
		case q.ch <- m:
			return
		default:
		}
		select {
		case <-q.ch:
			q.pending.Add(-1)
			q.dropped.Add(1)
		default:
		}
	}
}

// drain writes queued messages to the store until ctx ends, retrying each
// with a growing pause (up to 2 s) while Redis fails. It logs the first
// failure of a run of failures and the recovery, not every retry.
func (q *queue) drain(ctx context.Context, s *store, log *slog.Logger) {
	failing := false
	for {
		var m Message
		select {
		case <-ctx.Done():
			return
		case m = <-q.ch:
		}
		for pause := 100 * time.Millisecond; ; pause = min(2*pause, 2*time.Second) {
			err := s.push(ctx, m)
			if err == nil {
				break
			}
			if !failing {
				log.Error("storing messages failed; retrying", "err", err, "waiting", q.pending.Load())
				failing = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
		q.pending.Add(-1)
		if failing {
			log.Info("storing messages again", "waiting", q.pending.Load())
			failing = false
		}
	}
}
