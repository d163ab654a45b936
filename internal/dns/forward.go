package dns

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// Dialer opens a connection ("udp" or "tcp") to an upstream server. The namespace the socket
// is made in is the dialer's business: see NamespaceDialer.
type Dialer func(ctx context.Context, network string, server netip.AddrPort) (net.Conn, error)

// dialHere dials from the calling goroutine's thread: in the daemon, the daemon's namespace.
func dialHere(ctx context.Context, network string, server netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, server.String())
}

// ForwarderConfig tunes a Forwarder; zero values take Docker's.
type ForwarderConfig struct {
	// Timeout bounds the exchange with one upstream (UDP, then TCP when the UDP answer was
	// truncated) before the next is tried. Default 4 s, Docker's extIOTimeout: with two
	// upstreams the second still answers within the 5 s a glibc client waits.
	Timeout time.Duration
	// MaxConcurrent bounds the queries being forwarded at once, daemon-wide; a query beyond it
	// is refused at once instead of piling up goroutines and sockets. Default 1024 (Docker's).
	MaxConcurrent int
}

const (
	defaultTimeout       = 4 * time.Second
	defaultMaxConcurrent = 1024
	// upstreamBuf is the UDP read buffer for upstream answers: enough for any EDNS size clients
	// use; a datagram that fills it may have been cut and is fetched again over TCP.
	upstreamBuf = 4096
)

// Forwarder sends the queries no resolver owns to upstream servers. One per daemon: its bound
// on concurrent forwards protects the daemon from a container that floods its resolver with
// names nobody answers.
type Forwarder struct {
	timeout time.Duration
	slots   chan struct{}
}

// NewForwarder returns a forwarder with cfg's limits.
func NewForwarder(cfg ForwarderConfig) *Forwarder {
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = defaultMaxConcurrent
	}
	return &Forwarder{timeout: cfg.Timeout, slots: make(chan struct{}, cfg.MaxConcurrent)}
}

// acquire takes a forwarding slot without waiting; false when all are taken (or f is nil).
func (f *Forwarder) acquire() bool {
	if f == nil {
		return false
	}
	select {
	case f.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (f *Forwarder) release() { <-f.slots }

var upstreamBufs = sync.Pool{New: func() any { b := make([]byte, upstreamBuf); return &b }}

// forward sends msg (a query respond chose to forward, holding a slot) to the sandbox's
// upstreams in order and returns the first usable answer, truncated to what a UDP client
// accepts, or SERVFAIL when every upstream failed. msg is reused for the reply.
func (r *Resolver) forward(ctx context.Context, msg []byte, tcp bool) []byte {
	st := r.st.Load()
	var q query
	if parseHeader(msg, &q) != nil || parseQuery(msg, &q) != nil {
		return nil // respond parsed it already; cannot happen
	}
	// A fresh ID per forward: a client's predictable IDs must not make the upstream's answer
	// easier to spoof. The reply gets the client's ID back.
	binary.BigEndian.PutUint16(msg, uint16(rand.Uint32()))
	for _, up := range st.upstreams {
		resp, err := r.fwd.exchange(ctx, st.dial, up, msg, q.qEnd, tcp)
		if err != nil {
			continue
		}
		switch resp[3] & 0xF {
		case rcodeSuccess, rcodeNXDomain:
		default:
			continue // SERVFAIL, REFUSED…: another upstream may do better, as Docker does
		}
		binary.BigEndian.PutUint16(resp, q.id)
		if limit := maxSize(&q, tcp); len(resp) > limit {
			resp = truncate(resp, limit)
		}
		if resp != nil {
			return resp
		}
	}
	binary.BigEndian.PutUint16(msg, q.id)
	return emptyReply(msg, &q, rcodeServFail, tcp)
}

// truncate cuts an upstream answer to what a UDP client accepts, setting TC so that it asks
// again over TCP; nil if the answer cannot be parsed.
func truncate(resp []byte, limit int) []byte {
	var m mdns.Msg
	if m.Unpack(resp) != nil {
		return nil
	}
	m.Truncate(limit)
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	return b
}

// exchange asks one upstream: over UDP, again over TCP when the UDP answer is truncated, or
// over TCP only for a TCP client (whose answer may be long). qEnd delimits msg's question.
func (f *Forwarder) exchange(ctx context.Context, dial Dialer, up netip.AddrPort, msg []byte, qEnd int, tcp bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	if !tcp {
		resp, truncated, err := exchangeUDP(ctx, dial, up, msg, qEnd)
		if err != nil || !truncated {
			return resp, err
		}
	}
	return exchangeTCP(ctx, dial, up, msg, qEnd)
}

func exchangeUDP(ctx context.Context, dial Dialer, up netip.AddrPort, msg []byte, qEnd int) (resp []byte, truncated bool, err error) {
	conn, err := dialDeadline(ctx, dial, "udp", up)
	if err != nil {
		return nil, false, err
	}
	defer conn.Close()
	if _, err := conn.Write(msg); err != nil {
		return nil, false, fmt.Errorf("sending a query to upstream %s: %w", up, err)
	}
	bp := upstreamBufs.Get().(*[]byte)
	defer upstreamBufs.Put(bp)
	buf := *bp
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, false, fmt.Errorf("reading the answer of upstream %s over UDP: %w", up, err)
		}
		if !matches(msg, qEnd, buf[:n]) {
			continue // stray or spoofed datagram: wait for the real answer until the deadline
		}
		resp = append([]byte(nil), buf[:n]...)
		return resp, n == len(buf) || resp[2]&(flagTC>>8) != 0, nil
	}
}

func exchangeTCP(ctx context.Context, dial Dialer, up netip.AddrPort, msg []byte, qEnd int) ([]byte, error) {
	conn, err := dialDeadline(ctx, dial, "tcp", up)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	out := make([]byte, 2, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	if _, err := conn.Write(append(out, msg...)); err != nil {
		return nil, fmt.Errorf("sending a query to upstream %s over TCP: %w", up, err)
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, fmt.Errorf("reading the answer of upstream %s over TCP: %w", up, err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, resp); err != nil {
		return nil, fmt.Errorf("reading the answer of upstream %s over TCP: %w", up, err)
	}
	if !matches(msg, qEnd, resp) {
		return nil, fmt.Errorf("upstream %s answered another question over TCP", up)
	}
	return resp, nil
}

// dialDeadline dials and makes ctx's end (deadline or cancellation by Listener.Close) the
// connection's, since reads on a net.Conn do not watch a context.
func dialDeadline(ctx context.Context, dial Dialer, network string, up netip.AddrPort) (net.Conn, error) {
	conn, err := dial(ctx, network, up)
	if err != nil {
		return nil, fmt.Errorf("connecting to upstream %s over %s: %w", up, network, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return &stopConn{Conn: conn, stop: stop}, nil
}

type stopConn struct {
	net.Conn
	stop func() bool
}

func (c *stopConn) Close() error { c.stop(); return c.Conn.Close() }

// matches reports whether resp answers the query msg (question ending at qEnd): same ID, a
// response, and the same question (names compared case-insensitively). An error answer
// without a question is accepted: upstreams answer FORMERR that way.
func matches(msg []byte, qEnd int, resp []byte) bool {
	if len(resp) < headerLen || resp[0] != msg[0] || resp[1] != msg[1] || resp[2]&0x80 == 0 {
		return false
	}
	switch binary.BigEndian.Uint16(resp[4:]) {
	case 0:
		return resp[3]&0xF != rcodeSuccess && resp[3]&0xF != rcodeNXDomain
	case 1:
		if len(resp) < qEnd {
			return false
		}
		// Case matters nowhere in a question but in the name's letters (label lengths are < 64,
		// below 'A'); type and class are compared as bytes.
		for i := headerLen; i < qEnd-4; i++ {
			a, b := msg[i], resp[i]
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if a != b {
				return false
			}
		}
		return string(msg[qEnd-4:qEnd]) == string(resp[qEnd-4:qEnd])
	}
	return false
}
