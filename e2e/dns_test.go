package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// The guest resolves the update server by name through its own resolver
// (systemd-resolved), as a Pi on a LAN does. QEMU's restricted user
// network answers DHCP but carries no UDP (so no DNS server of its own)
// and forwards only TCP to the host's loopback; the e2e images therefore
// point resolved at 10.0.2.100 with DNS over TLS (port 853, TCP), which
// this fake name server answers, each guest connection relayed to it on
// its own (guestRelay).
const (
	guestDNS   = "10.0.2.100:853"
	serverName = "updates.fleet.test"
	serverAddr = "10.0.2.100" // where guestfwd rules listen
)

// relayEnv, when set, makes the test binary a relay instead: its stdin
// and stdout (one guest connection, handed over by QEMU's guestfwd cmd:)
// to the loopback address the variable names.
const relayEnv = "PIBAKE_E2E_RELAY"

// relay copies stdin to addr and addr to stdout until both are done.
func relay(addr string) int {
	if !strings.HasPrefix(addr, "127.") {
		fmt.Fprintf(os.Stderr, "relay: %s is not a loopback address\n", addr)
		return 2
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(os.Stdout, c)
	os.Stdout.Close()
	c.Close()
	return 0
}

// guestRelay is the GuestCmd entry that relays each guest connection to
// addr on the host's loopback.
func guestRelay(t *testing.T, addr string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// QEMU splits the command into words and runs it without a shell.
	return "/usr/bin/env " + relayEnv + "=" + addr + " " + exe
}

// dnsServer is a DNS-over-TLS server on the host's loopback that answers A
// queries for its names and NXDOMAIN for everything else.
type dnsServer struct {
	addr    string
	names   map[string]netip.Addr
	mu      sync.Mutex
	asked   map[string]int // name → A queries answered
	conns   int            // connections accepted
	lastErr error          // the last connection's failure, for the test's messages
}

// String says what the server saw, for a failing test's message.
func (ds *dnsServer) String() string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return fmt.Sprintf("name server: %d connections, answers %v, last error %v", ds.conns, ds.asked, ds.lastErr)
}

func (ds *dnsServer) fail(err error) {
	ds.mu.Lock()
	ds.lastErr = err
	ds.mu.Unlock()
}

func serveDNS(t *testing.T, names map[string]string) *dnsServer {
	t.Helper()
	ds := &dnsServer{names: map[string]netip.Addr{}, asked: map[string]int{}}
	for n, a := range names {
		ds.names[strings.ToLower(strings.TrimSuffix(n, "."))] = netip.MustParseAddr(a)
	}
	cert := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	ds.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go ds.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ds
}

// queries returns how many A queries for name were answered.
func (ds *dnsServer) queries(name string) int {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return ds.asked[name]
}

// serve answers length-prefixed DNS messages (RFC 7858) until the
// client closes the connection.
func (ds *dnsServer) serve(c net.Conn) {
	defer c.Close()
	ds.mu.Lock()
	ds.conns++
	ds.mu.Unlock()
	if err := c.(*tls.Conn).Handshake(); err != nil {
		ds.fail(fmt.Errorf("TLS handshake: %w", err))
		return
	}
	for {
		_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			ds.fail(err)
			return
		}
		out, err := ds.answer(msg)
		if err != nil {
			ds.fail(fmt.Errorf("query: %w", err))
			return
		}
		binary.BigEndian.PutUint16(n[:], uint16(len(out)))
		if _, err := c.Write(append(n[:], out...)); err != nil {
			return
		}
	}
}

func (ds *dnsServer) answer(msg []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	// An EDNS0 query gets an EDNS0 answer: resolved takes an answer
	// without OPT for a server that does not speak EDNS0 and leaves DNS
	// over TLS for plain UDP, which this network does not carry.
	if err := p.SkipAllQuestions(); err != nil {
		return nil, err
	}
	if err := p.SkipAllAnswers(); err != nil {
		return nil, err
	}
	if err := p.SkipAllAuthorities(); err != nil {
		return nil, err
	}
	extra, err := p.AllAdditionals()
	if err != nil {
		return nil, err
	}
	edns := false
	for _, rr := range extra {
		edns = edns || rr.Header.Type == dnsmessage.TypeOPT
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	addr, known := ds.names[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if known && q.Type == dnsmessage.TypeA && addr.Is4() {
		ds.mu.Lock()
		ds.asked[name]++
		ds.mu.Unlock()
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: addr.As4()}); err != nil {
			return nil, err
		}
	}
	if edns {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(1232, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// selfSigned makes a throw-away certificate: resolved's opportunistic DNS
// over TLS does not check it.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "pibake e2e name server"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP(serverAddr)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestFakeDNS checks the fake name server with Go's own resolver over TLS.
func TestFakeDNS(t *testing.T) {
	ds := serveDNS(t, map[string]string{serverName: serverAddr})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d tls.Dialer
		d.Config = &tls.Config{InsecureSkipVerify: true}
		return d.DialContext(ctx, "tcp", ds.addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip4", serverName)
	if err != nil || len(addrs) != 1 || addrs[0].String() != serverAddr {
		t.Fatalf("lookup %s = %v, %v; want %s", serverName, addrs, err, serverAddr)
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "elsewhere.test"); err == nil {
		t.Fatal("an unknown name resolved")
	}
	if n := ds.queries(serverName); n != 1 {
		t.Fatalf("%d queries counted, want 1", n)
	}
	// An EDNS0 query (what resolved sends) gets an OPT record back.
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(serverName + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	b.StartAdditionals()
	var opt dnsmessage.ResourceHeader
	opt.SetEDNS0(1232, dnsmessage.RCodeSuccess, false)
	b.OPTResource(opt, dnsmessage.OPTResource{})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	out, err := ds.answer(q)
	if err != nil {
		t.Fatal(err)
	}
	var m dnsmessage.Message
	if err := m.Unpack(out); err != nil || len(m.Answers) != 1 || len(m.Additionals) != 1 || m.Additionals[0].Header.Type != dnsmessage.TypeOPT {
		t.Fatalf("answer to an EDNS0 query: %+v, %v", m, err)
	}
}
