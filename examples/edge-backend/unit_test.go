package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// TestReadReply: every RESP reply form, and bad input as a clear error.
func TestReadReply(t *testing.T) {
	for _, c := range []struct {
		in   string
		want any
		err  string
	}{
		{"+OK\r\n", "OK", ""},
		{"-WRONGPASS invalid\r\n", redisError("WRONGPASS invalid"), ""},
		{":42\r\n", int64(42), ""},
		{"$3\r\nabc\r\n", "abc", ""},
		{"$-1\r\n", nil, ""},
		{"*2\r\n$1\r\na\r\n:1\r\n", []any{"a", int64(1)}, ""},
		{"*-1\r\n", nil, ""},
		{"HTTP/1.1 400 Bad Request\r\n", nil, "is this address a Redis server"},
		{"$99999999999\r\n", nil, "bulk length"},
		{"*999999999\r\n", nil, "array length"},
		{"$5\r\nab", nil, "bulk string of 5 bytes"},
		{"", nil, "connection closed by the server"},
		{"\r\n", nil, "not a RESP reply"},
	} {
		got, err := readReply(bufio.NewReader(strings.NewReader(c.in)))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
}

func TestEncode(t *testing.T) {
	got := string(encode([][]string{{"PING"}, {"LPUSH", "k", "a b"}}))
	want := "*1\r\n$4\r\nPING\r\n*3\r\n$5\r\nLPUSH\r\n$1\r\nk\r\n$3\r\na b\r\n"
	if got != want {
		t.Errorf("got %q", got)
	}
}

// TestQueueDropsOldest: a full queue keeps the newest messages.
func TestQueueDropsOldest(t *testing.T) {
	q := newQueue(2)
	for _, p := range []string{"1", "2", "3"} {
		q.offer(Message{Payload: p})
	}
	if a, b := (<-q.ch).Payload, (<-q.ch).Payload; a != "2" || b != "3" {
		t.Errorf("kept %s %s, want 2 3", a, b)
	}
	if q.dropped.Load() != 1 || q.pending.Load() != 2 {
		t.Errorf("dropped %d pending %d, want 1 and 2", q.dropped.Load(), q.pending.Load())
	}
}

// TestFlags: environment variables are the flags' defaults, and bad
// input is refused.
func TestFlags(t *testing.T) {
	t.Setenv("EDGE_REDIS", "10.0.0.9:6379")
	t.Setenv("EDGE_SECRETS", "/data/edge/secrets")
	c, err := parseFlags([]string{"-topic", "a/#"}, io.Discard)
	if err != nil || c.redis != "10.0.0.9:6379" || c.secrets != "/data/edge/secrets" || c.topic != "a/#" || c.listen != "127.0.0.1:8081" {
		t.Errorf("parseFlags: %+v %v", c, err)
	}
	for _, args := range [][]string{{"-keep", "0"}, {"extra"}, {"-nope"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestCheck: -check is 0 on 200 only.
func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := run(context.Background(), []string{"-check", srv.URL + "/healthz"}, io.Discard, io.Discard); err != nil {
		t.Errorf("healthy: %v", err)
	}
	err := run(context.Background(), []string{"-check", srv.URL + "/other"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("unhealthy: %v", err)
	}
	if err := run(context.Background(), []string{"-check", "http://127.0.0.1:1/healthz"}, io.Discard, io.Discard); err == nil {
		t.Error("no server: nil error")
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
