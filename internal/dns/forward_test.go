package dns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// stub is an upstream server the test runs on 127.0.0.1 (UDP and TCP on one port).
type stub struct {
	addr     netip.AddrPort
	udp, tcp atomic.Int32 // queries received per transport
	ids      chan uint16  // IDs of the queries received
}

func startStub(t *testing.T, h func(w mdns.ResponseWriter, m *mdns.Msg, tcp bool)) *stub {
	t.Helper()
	s := &stub{ids: make(chan uint16, 100)}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP on 127.0.0.1")
	}
	s.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, m *mdns.Msg) {
		tcp := w.LocalAddr().Network() == "tcp"
		if tcp {
			s.tcp.Add(1)
		} else {
			s.udp.Add(1)
		}
		select {
		case s.ids <- m.Id:
		default:
		}
		h(w, m, tcp)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return s
}

// answerA answers every question with n A records 192.0.2.x (documentation addresses: never
// dialled, only carried).
func answerA(n int) func(mdns.ResponseWriter, *mdns.Msg, bool) {
	return func(w mdns.ResponseWriter, m *mdns.Msg, tcp bool) {
		resp := new(mdns.Msg).SetReply(m)
		for i := range n {
			rr, _ := mdns.NewRR(fmt.Sprintf("%s 60 IN A 192.0.2.%d", m.Question[0].Name, i+1))
			resp.Answer = append(resp.Answer, rr)
		}
		_ = w.WriteMsg(resp)
	}
}

func rcodeOnly(rcode int) func(mdns.ResponseWriter, *mdns.Msg, bool) {
	return func(w mdns.ResponseWriter, m *mdns.Msg, tcp bool) {
		_ = w.WriteMsg(new(mdns.Msg).SetRcode(m, rcode))
	}
}

// deadPort returns a loopback address where nothing listens (refused at once).
func deadPort(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// silent returns a loopback UDP address that reads queries and never answers.
func silent(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func fwdResolver(cfg ForwarderConfig, ups ...netip.AddrPort) (*Resolver, *Forwarder) {
	f := NewForwarder(cfg)
	return NewResolver(fixture(), f, Config{Networks: []string{"mybridge"}, Upstreams: ups}), f
}

func TestForward(t *testing.T) {
	good := startStub(t, answerA(1))
	r, _ := fwdResolver(ForwarderConfig{}, good.addr)
	m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false)
	if m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 1 || m.Id != 0x4242 {
		t.Fatalf("forwarded answer: %v", m)
	}
	if id := <-good.ids; id == 0x4242 {
		t.Logf("the upstream saw the client's ID (1 in 65536 by chance)")
	}
	// Names the resolver owns never reach the upstream, NODATA included.
	before := good.udp.Load()
	for _, q := range [][]byte{mkQuery("c1.", mdns.TypeA), mkQuery("c1.", mdns.TypeAAAA), mkQuery("2.0.18.172.in-addr.arpa.", mdns.TypePTR)} {
		ask(t, r, q, false)
	}
	if good.udp.Load() != before {
		t.Fatal("a query the resolver owns was forwarded")
	}
	// An unknown PTR is the upstream's.
	if m := ask(t, r, mkQuery("1.2.0.192.in-addr.arpa.", mdns.TypePTR), false); m.Rcode != mdns.RcodeSuccess || good.udp.Load() != before+1 {
		t.Fatalf("unknown PTR not forwarded: %v", m)
	}
}

func TestForwardFailover(t *testing.T) {
	broken := startStub(t, rcodeOnly(mdns.RcodeServerFailure))
	good := startStub(t, answerA(1))
	r, _ := fwdResolver(ForwarderConfig{}, deadPort(t), broken.addr, good.addr)
	if m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false); m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("want the third upstream's answer: %v", m)
	}
	// NXDOMAIN is an answer: the next upstream is not asked.
	nx := startStub(t, rcodeOnly(mdns.RcodeNameError))
	other := startStub(t, answerA(1))
	r, _ = fwdResolver(ForwarderConfig{}, nx.addr, other.addr)
	if m := ask(t, r, mkQuery("nope.example.", mdns.TypeA), false); m.Rcode != mdns.RcodeNameError || other.udp.Load() != 0 {
		t.Fatalf("want the first upstream's NXDOMAIN only: %v", m)
	}
}

func TestForwardServfail(t *testing.T) {
	for name, ups := range map[string][]netip.AddrPort{
		"stub down":     {deadPort(t)},
		"all refuse":    {startStub(t, rcodeOnly(mdns.RcodeRefused)).addr, deadPort(t)},
		"no upstreams":  nil, // --internal: nothing forwarded
		"stub servfail": {startStub(t, rcodeOnly(mdns.RcodeServerFailure)).addr},
	} {
		t.Run(name, func(t *testing.T) {
			r, _ := fwdResolver(ForwarderConfig{}, ups...)
			m := ask(t, r, mkQuery("example.com.", mdns.TypeA, withEDNS(1232)), false)
			if m.Rcode != mdns.RcodeServerFailure || m.Id != 0x4242 || m.Question[0].Name != "example.com." {
				t.Fatalf("want SERVFAIL for the client's query: %v", m)
			}
		})
	}
}

func TestForwardNdots(t *testing.T) {
	up := startStub(t, answerA(1))
	r := NewResolver(fixture(), NewForwarder(ForwarderConfig{}), Config{
		Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{up.addr}, NdotsSet: true})
	if m := ask(t, r, mkQuery("nosuchhost.", mdns.TypeA), false); m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 0 || up.udp.Load() != 0 {
		t.Fatalf("single label with ndots set: want NODATA, not forwarded: %v", m)
	}
	if m := ask(t, r, mkQuery("host.example.", mdns.TypeA), false); len(m.Answer) != 1 {
		t.Fatalf("dotted name is forwarded: %v", m)
	}
}

// A truncated UDP answer is fetched again over TCP; what the client gets is cut to its own
// limit, with TC set only when records had to go.
func TestForwardTCPFallback(t *testing.T) {
	up := startStub(t, func(w mdns.ResponseWriter, m *mdns.Msg, tcp bool) {
		if !tcp {
			resp := new(mdns.Msg).SetReply(m)
			resp.Truncated = true
			_ = w.WriteMsg(resp)
			return
		}
		answerA(50)(w, m, tcp)
	})
	r, _ := fwdResolver(ForwarderConfig{}, up.addr)
	m := ask(t, r, mkQuery("big.example.", mdns.TypeA, withEDNS(4096)), false)
	if m.Truncated || len(m.Answer) != 50 || up.tcp.Load() != 1 {
		t.Fatalf("want all 50 records via TCP (tcp queries %d): tc=%v %d", up.tcp.Load(), m.Truncated, len(m.Answer))
	}
	raw := r.handle(t.Context(), mkQuery("big.example.", mdns.TypeA), false)
	m = new(mdns.Msg)
	if err := m.Unpack(raw); err != nil || !m.Truncated || len(raw) > 512 || len(m.Answer) == 0 {
		t.Fatalf("non-EDNS client: want what fits 512 bytes with TC: %v %d bytes %v", err, len(raw), m)
	}
	// A TCP client's query goes to the upstream over TCP directly.
	m = ask(t, r, mkQuery("big.example.", mdns.TypeA), true)
	if len(m.Answer) != 50 || up.tcp.Load() != 3 {
		t.Fatalf("TCP client: %d records, %d TCP queries", len(m.Answer), up.tcp.Load())
	}
}

func TestForwardTimeout(t *testing.T) {
	good := startStub(t, answerA(1))
	r, _ := fwdResolver(ForwarderConfig{Timeout: 300 * time.Millisecond}, silent(t), good.addr)
	start := time.Now()
	m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false)
	if took := time.Since(start); m.Rcode != mdns.RcodeSuccess || took < 300*time.Millisecond {
		t.Fatalf("want the second upstream's answer after the first timed out: %v after %v", m, took)
	}
	r, _ = fwdResolver(ForwarderConfig{Timeout: 300 * time.Millisecond}, silent(t))
	if m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false); m.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("want SERVFAIL when the only upstream is silent: %v", m)
	}
}

// Beyond the bound a query is refused at once, not queued.
func TestForwardConcurrencyBound(t *testing.T) {
	r, f := fwdResolver(ForwarderConfig{Timeout: 10 * time.Second, MaxConcurrent: 2}, silent(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan []byte, 2)
	for range 2 {
		go func() { done <- r.handle(ctx, mkQuery("slow.example.", mdns.TypeA), false) }()
	}
	for len(f.slots) < 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	m := ask(t, r, mkQuery("third.example.", mdns.TypeA), false)
	if m.Rcode != mdns.RcodeRefused || time.Since(start) > time.Second {
		t.Fatalf("third concurrent forward: want REFUSED at once, got %v after %v", m, time.Since(start))
	}
	// Owned names are answered whatever the forwards do.
	if m := ask(t, r, mkQuery("c1.", mdns.TypeA), false); len(m.Answer) != 1 {
		t.Fatalf("owned name while forwards are stuck: %v", m)
	}
	cancel() // Listener.Close does this: forwards in flight end at once
	for range 2 {
		select {
		case b := <-done:
			if b == nil || b[3]&0xF != rcodeServFail {
				t.Fatalf("cancelled forward: want SERVFAIL, got % x", b)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("cancelled forward did not return")
		}
	}
	if len(f.slots) != 0 {
		t.Fatalf("%d slots still taken", len(f.slots))
	}
}

// Datagrams that do not answer the query (wrong ID, other question) are ignored.
func TestForwardIgnoresStrayAnswers(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 512)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := new(mdns.Msg)
		if q.Unpack(buf[:n]) != nil {
			return
		}
		send := func(m *mdns.Msg) { b, _ := m.Pack(); _, _ = pc.WriteTo(b, from) }
		wrongID := new(mdns.Msg).SetReply(q)
		wrongID.Id++
		wrongID.Rcode = mdns.RcodeNameError
		send(wrongID)
		otherQ := new(mdns.Msg).SetReply(q)
		otherQ.Question[0].Name = "evil.example."
		otherQ.Rcode = mdns.RcodeNameError
		send(otherQ)
		q.Question[0].Name = "EXAMPLE.com." // case may differ (0x20 randomisation upstream)
		real := new(mdns.Msg).SetReply(q)
		rr, _ := mdns.NewRR("example.com. 60 IN A 192.0.2.7")
		real.Answer = []mdns.RR{rr}
		send(real)
	}()
	r, _ := fwdResolver(ForwarderConfig{Timeout: 2 * time.Second}, pc.LocalAddr().(*net.UDPAddr).AddrPort())
	m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false)
	if m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("want the real answer: %v", m)
	}
}

func TestForwardUsesDialer(t *testing.T) {
	up := startStub(t, answerA(1))
	var dials atomic.Int32
	r := NewResolver(fixture(), NewForwarder(ForwarderConfig{}), Config{
		Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{up.addr},
		Dial: func(ctx context.Context, network string, server netip.AddrPort) (net.Conn, error) {
			dials.Add(1)
			return dialHere(ctx, network, server)
		},
	})
	if m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false); len(m.Answer) != 1 || dials.Load() != 1 {
		t.Fatalf("answer %v, %d dials", m, dials.Load())
	}
	// SetUpstreams(nil) turns forwarding off (the sandbox left its last non-internal network).
	r.SetUpstreams(nil)
	if m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false); m.Rcode != mdns.RcodeServerFailure || dials.Load() != 1 {
		t.Fatalf("forwarding off: %v, %d dials", m, dials.Load())
	}
}
