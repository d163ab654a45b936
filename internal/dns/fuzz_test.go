package dns

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeUpstream is an in-memory upstream for fuzzing: it answers each query with the fuzzer's
// bytes (ID patched to match), then with the query echoed as a response, so that both the
// handling of client bytes and of upstream bytes are exercised without any network.
type fakeUpstream struct {
	answer []byte
	out    [][]byte // UDP datagrams waiting to be read
}

func (f *fakeUpstream) dial(ctx context.Context, network string, server netip.AddrPort) (net.Conn, error) {
	return &fakeConn{up: f, tcp: network == "tcp"}, nil
}

type fakeConn struct {
	net.Conn // nil: only the methods below are used
	up       *fakeUpstream
	tcp      bool
	pending  []byte
}

func (c *fakeConn) Write(b []byte) (int, error) {
	q := b
	if c.tcp {
		if len(b) < 2 {
			return len(b), nil
		}
		q = b[2:]
	}
	var msgs [][]byte
	if len(c.up.answer) >= 2 && len(q) >= 2 {
		a := slices.Clone(c.up.answer)
		copy(a, q[:2])
		msgs = append(msgs, a)
	}
	if len(q) >= headerLen {
		echo := slices.Clone(q)
		echo[2] |= 0x80
		if !c.tcp && len(q)%2 == 1 {
			echo[2] |= flagTC >> 8 // odd queries get a truncated UDP answer: TCP fallback
		}
		msgs = append(msgs, echo)
	}
	for _, m := range msgs {
		if c.tcp {
			c.pending = binary.BigEndian.AppendUint16(c.pending, uint16(len(m)))
			c.pending = append(c.pending, m...)
		} else {
			c.up.out = append(c.up.out, m)
		}
	}
	return len(b), nil
}

func (c *fakeConn) Read(b []byte) (int, error) {
	if c.tcp {
		if len(c.pending) == 0 {
			return 0, os.ErrDeadlineExceeded
		}
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if len(c.up.out) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(b, c.up.out[0])
	c.up.out = c.up.out[1:]
	return n, nil
}

func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(name string, qtype uint16, mods ...func(*mdns.Msg)) {
		seeds = append(seeds, mkQuery(name, qtype, mods...))
	}
	add("c1.", mdns.TypeA)
	add("YCEFFORT.", mdns.TypeA, withEDNS(4096))
	add("c1.mybridge.", mdns.TypeAAAA)
	add("v6c.", mdns.TypeANY)
	add("2.0.18.172.in-addr.arpa.", mdns.TypePTR)
	add("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", mdns.TypePTR)
	add("example.com.", mdns.TypeMX)
	add("example.com.", mdns.TypeTXT, withEDNS(512))
	add("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) })
	add("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question = nil })
	add("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeUpdate })
	add("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS })
	add("c1.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0123456789abcdef"})
	})
	add("c1.", mdns.TypeA, func(m *mdns.Msg) { m.SetEdns0(4096, false); m.IsEdns0().SetVersion(1) })
	add("mybridge.", mdns.TypeAXFR)
	long := mkQuery("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.example.", mdns.TypeA)
	seeds = append(seeds, long, long[:len(long)-3], long[:13], long[:12], long[:5])
	return seeds
}

// FuzzHandler feeds raw messages (and raw upstream answers) to the resolver: it must never
// panic, must answer with the client's ID when it answers, and must still answer a good query
// afterwards.
func FuzzHandler(f *testing.F) {
	up := startFuzzAnswer()
	for _, s := range fuzzSeeds() {
		f.Add(s, up, false)
		f.Add(s, []byte{}, true)
	}
	f.Fuzz(func(t *testing.T, msg, answer []byte, tcp bool) {
		fake := &fakeUpstream{answer: answer}
		r := NewResolver(fixture(), NewForwarder(ForwarderConfig{Timeout: time.Second}), Config{
			Networks:  []string{"mybridge", "net6"},
			Links:     map[string]string{"nasa1515": "c1"},
			Upstreams: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("192.0.2.2:53")},
			Dial:      fake.dial,
		})
		// The UDP listener's path: respond in place in a buffer with spare capacity.
		buf := make([]byte, len(msg), max(len(msg), udpReadBuf))
		copy(buf, msg)
		resp, act := r.respond(buf, tcp)
		check(t, msg, resp, act == actReply, tcp)
		// The TCP and dns.Handler path, forwarding included.
		resp = r.handle(context.Background(), slices.Clone(msg), tcp)
		check(t, msg, resp, resp != nil, tcp)

		good := mkQuery("yceffort.", mdns.TypeA)
		var m mdns.Msg
		if err := m.Unpack(r.handle(context.Background(), good, false)); err != nil || len(m.Answer) != 3 {
			t.Fatalf("a good query after this one: %v %v", err, &m)
		}
	})
}

func check(t *testing.T, msg, resp []byte, replied, tcp bool) {
	t.Helper()
	if !replied {
		return
	}
	if len(resp) < headerLen || resp[0] != msg[0] || resp[1] != msg[1] || resp[2]&0x80 == 0 {
		t.Fatalf("reply without the query's ID or QR: % x", resp)
	}
	if len(resp) > 65535 || (!tcp && len(resp) > maxUDPAnswer+11) {
		t.Fatalf("reply of %d bytes", len(resp))
	}
}

// startFuzzAnswer is a plausible upstream answer to seed the upstream side of the fuzzer.
func startFuzzAnswer() []byte {
	m := new(mdns.Msg).SetQuestion("example.com.", mdns.TypeA)
	m.Response = true
	rr, _ := mdns.NewRR("example.com. 60 IN A 192.0.2.7")
	m.Answer = []mdns.RR{rr}
	b, _ := m.Pack()
	return b
}
