package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// redisClient speaks the part of RESP2 the backend needs over one
// connection, dialled (and authenticated) on first use and again after
// any network or protocol error. Commands are serialised: the backend's
// load is a few commands a second. It is ours rather than go-redis
// because go-redis adds about 2.1 MB to the arm64 binary
// (docs/edge-stack.md).
type redisClient struct {
	addr     string
	password string
	timeout  time.Duration // per exchange when ctx has no earlier deadline

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// redisError is an error reply of the server (-ERR …, -WRONGPASS …).
type redisError string

func (e redisError) Error() string { return string(e) }

// Bounds on what a reply may announce, so a wrong server cannot make the
// backend allocate without limit.
const (
	maxBulk  = 8 << 20
	maxArray = 1 << 16
)

// do sends the commands in one write (a pipeline) and returns one reply
// per command: a string, an int64, nil, a []any or a redisError.
func (c *redisClient) do(ctx context.Context, cmds ...[]string) ([]any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	replies, err := c.exchange(ctx, cmds)
	if err != nil && c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
	return replies, err
}

func (c *redisClient) exchange(ctx context.Context, cmds [][]string) ([]any, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if c.conn == nil {
		if err := c.dial(ctx, deadline); err != nil {
			return nil, err
		}
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("redis %s: %w", c.addr, err)
	}
	if _, err := c.conn.Write(encode(cmds)); err != nil {
		return nil, fmt.Errorf("redis %s: send: %w", c.addr, err)
	}
	replies := make([]any, len(cmds))
	for i := range cmds {
		v, err := readReply(c.r)
		if err != nil {
			return nil, fmt.Errorf("redis %s: reply to %s: %w", c.addr, cmds[i][0], err)
		}
		replies[i] = v
	}
	return replies, nil
}

// dial connects and, with a password, authenticates. A refused password
// is reported as the server says it (WRONGPASS, NOAUTH): the password
// itself is never part of an error.
func (c *redisClient) dial(ctx context.Context, deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	c.conn, c.r = conn, bufio.NewReader(conn)
	if c.password == "" {
		return nil
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("redis %s: %w", c.addr, err)
	}
	if _, err := conn.Write(encode([][]string{{"AUTH", c.password}})); err != nil {
		return fmt.Errorf("redis %s: send AUTH: %w", c.addr, err)
	}
	v, err := readReply(c.r)
	if err != nil {
		return fmt.Errorf("redis %s: reply to AUTH: %w", c.addr, err)
	}
	if e, ok := v.(redisError); ok {
		return fmt.Errorf("redis %s: AUTH refused (%w): check the password file", c.addr, e)
	}
	return nil
}

// encode writes commands as RESP arrays of bulk strings.
func encode(cmds [][]string) []byte {
	var b []byte
	for _, args := range cmds {
		b = append(b, '*')
		b = strconv.AppendInt(b, int64(len(args)), 10)
		b = append(b, "\r\n"...)
		for _, a := range args {
			b = append(b, '$')
			b = strconv.AppendInt(b, int64(len(a)), 10)
			b = append(b, "\r\n"...)
			b = append(b, a...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

var errProtocol = errors.New("not a RESP reply: is this address a Redis server?")

// readReply reads one reply. Error replies are returned as values
// (redisError), not as errors: the connection is still good.
func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("connection closed by the server: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errProtocol
	}
	body := line[1:]
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return redisError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("integer reply %q: %w", body, errProtocol)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("bulk length %q: %w", body, errProtocol)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("bulk string of %d bytes: %w", n, err)
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxArray {
			return nil, fmt.Errorf("array length %q: %w", body, errProtocol)
		}
		if n == -1 {
			return nil, nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("reply starts with %q: %w", line[0], errProtocol)
}
