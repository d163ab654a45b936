package dns

import (
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// loopbackListener serves r on 127.0.0.1 in the test's own namespace: the serving code
// without the namespace and nftables parts, so that it runs without root.
func loopbackListener(t *testing.T, r *Resolver) (*Listener, string, string) {
	t.Helper()
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	l := serveSockets(udp, tcp, r)
	t.Cleanup(func() { l.Close() })
	return l, udp.LocalAddr().String(), tcp.Addr().String()
}

func exchange(t *testing.T, network, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: network, Timeout: 3 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query to %s: %v", network, addr, err)
	}
	return resp
}

func TestListenerLoopback(t *testing.T) {
	up := startStub(t, answerA(2))
	f := NewForwarder(ForwarderConfig{})
	r := NewResolver(fixture(), f, Config{Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{up.addr}})
	before := runtime.NumGoroutine()
	l, udp, tcp := loopbackListener(t, r)

	for _, tc := range []struct {
		network, addr string
	}{{"udp", udp}, {"tcp", tcp}} {
		q := new(mdns.Msg).SetQuestion("yceffort.", mdns.TypeA)
		if m := exchange(t, tc.network, tc.addr, q); len(m.Answer) != 3 {
			t.Errorf("%s yceffort: %v", tc.network, m)
		}
		q = new(mdns.Msg).SetQuestion("example.com.", mdns.TypeA)
		if m := exchange(t, tc.network, tc.addr, q); len(m.Answer) != 2 {
			t.Errorf("%s forwarded: %v", tc.network, m)
		}
	}

	// One TCP connection carries several queries (RFC 7766).
	conn, err := mdns.Dial("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"c1.", "web.", "example.org."} {
		if err := conn.WriteMsg(new(mdns.Msg).SetQuestion(name, mdns.TypeA)); err != nil {
			t.Fatal(err)
		}
		if m, err := conn.ReadMsg(); err != nil || len(m.Answer) == 0 {
			t.Fatalf("query %s on a kept-open connection: %v %v", name, err, m)
		}
	}
	conn.Close()

	// Garbage does not stop the listener.
	raw, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{{1}, make([]byte, 12), make([]byte, 2000), {0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0}} {
		_, _ = raw.Write(junk)
	}
	raw.Close()
	if m := exchange(t, "udp", udp, new(mdns.Msg).SetQuestion("c1.", mdns.TypeA)); len(m.Answer) != 1 {
		t.Fatalf("after junk: %v", m)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before Serve", n, before)
	}
}

func TestListenerRefusesBeyondBound(t *testing.T) {
	f := NewForwarder(ForwarderConfig{MaxConcurrent: 1, Timeout: 5 * time.Second})
	r := NewResolver(fixture(), f, Config{Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{silent(t)}})
	l, udp, _ := loopbackListener(t, r)
	c, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write(mkQuery("slow.example.", mdns.TypeA))
	for len(f.slots) < 1 {
		time.Sleep(time.Millisecond)
	}
	if m := exchange(t, "udp", udp, new(mdns.Msg).SetQuestion("other.example.", mdns.TypeA)); m.Rcode != mdns.RcodeRefused {
		t.Fatalf("want REFUSED beyond the bound: %v", m)
	}
	start := time.Now()
	l.Close() // cancels the forward in flight
	if took := time.Since(start); took > 2*time.Second || len(f.slots) != 0 {
		t.Fatalf("Close took %v with %d slots taken", took, len(f.slots))
	}
}

// The resolver is also a plain miekg handler.
func TestServeDNSHandler(t *testing.T) {
	r := NewResolver(fixture(), nil, Config{Networks: []string{"mybridge"}})
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: r}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	defer srv.Shutdown()
	m := exchange(t, "udp", pc.LocalAddr().String(), new(mdns.Msg).SetQuestion("yceffort.", mdns.TypeA))
	got := addrs(m)
	slices.Sort(got)
	if !slices.Equal(got, []string{"172.18.0.3", "172.18.0.4", "172.18.0.5"}) {
		t.Fatalf("via dns.Server: %v", m)
	}
}

// A burst fills recvmmsg batches: every query gets its own answer, whatever its kind.
func TestListenerBurst(t *testing.T) {
	up := startStub(t, answerA(1))
	r := NewResolver(fixture(), NewForwarder(ForwarderConfig{}), Config{
		Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{up.addr}})
	_, udp, _ := loopbackListener(t, r)
	c, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 60
	want := map[uint16]int{} // ID → rcode
	for i := range n {
		var q *mdns.Msg
		switch i % 4 {
		case 0, 1:
			q = new(mdns.Msg).SetQuestion("yceffort.", mdns.TypeA)
		case 2:
			q = new(mdns.Msg).SetQuestion("forwarded.example.", mdns.TypeA)
		case 3:
			q = new(mdns.Msg).SetQuestion("c1.", mdns.TypeA)
			q.Opcode = mdns.OpcodeStatus
		}
		q.Id = uint16(1000 + i)
		want[q.Id] = map[int]int{3: mdns.RcodeNotImplemented}[i%4]
		b, _ := q.Pack()
		if i == n/2 {
			big := append(b[:len(b):len(b)], make([]byte, 2000)...) // cut by the kernel: FORMERR
			big[0], big[1] = 0xFF, 0xFF
			want[0xFFFF] = mdns.RcodeFormatError
			_, _ = c.Write(big)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for len(want) > 0 {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%d answers missing: %v", len(want), err)
		}
		m := new(mdns.Msg)
		if err := m.Unpack(buf[:k]); err != nil {
			t.Fatalf("answer does not unpack: %v", err)
		}
		rcode, ok := want[m.Id]
		if !ok {
			t.Fatalf("unexpected or duplicate answer %d", m.Id)
		}
		if m.Rcode != rcode || (rcode == 0 && len(m.Answer) == 0) {
			t.Fatalf("answer %d: %v", m.Id, m)
		}
		delete(want, m.Id)
	}
}
