package dns

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestResolverAnswers(t *testing.T) {
	r := NewResolver(fixture(), nil, Config{
		Networks: []string{"mybridge", "net6"},
		Links:    map[string]string{"nasa1515": "c1"},
	})
	tests := []struct {
		name  string
		msg   []byte
		rcode int
		want  []string // addresses, sorted; or the PTR target
		ptr   string
	}{
		{"container name", mkQuery("c1.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"name recorded with a trailing dot", mkQuery("dotted.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"case-insensitive", mkQuery("C1.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"alias", mkQuery("web.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"hostname", mkQuery("c1host.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"short id", mkQuery("855a0c9c1234.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"name.network", mkQuery("c1.mybridge.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"name.NETWORK", mkQuery("C1.MyBridge.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"link alias", mkQuery("nasa1515.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"three alias holders", mkQuery("yceffort.", mdns.TypeA), mdns.RcodeSuccess,
			[]string{"172.18.0.3", "172.18.0.4", "172.18.0.5"}, ""},
		{"AAAA of an IPv4-only name is NODATA", mkQuery("c1.", mdns.TypeAAAA), mdns.RcodeSuccess, nil, ""},
		{"AAAA", mkQuery("v6c.", mdns.TypeAAAA), mdns.RcodeSuccess, []string{"fd00::2"}, ""},
		{"A of a dual-stack name", mkQuery("v6c.net6.", mdns.TypeA), mdns.RcodeSuccess, []string{"172.20.0.2"}, ""},
		{"ANY", mkQuery("v6c.", mdns.TypeANY), mdns.RcodeSuccess, []string{"172.20.0.2", "fd00::2"}, ""},
		{"MX of a known name is NODATA", mkQuery("c1.", mdns.TypeMX), mdns.RcodeSuccess, nil, ""},
		{"PTR", mkQuery("2.0.18.172.in-addr.arpa.", mdns.TypePTR), mdns.RcodeSuccess, nil, "c1.mybridge."},
		{"PTR IPv6", mkQuery("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", mdns.TypePTR),
			mdns.RcodeSuccess, nil, "v6c.net6."},
		{"PTR of an alias holder", mkQuery("4.0.18.172.in-addr.arpa.", mdns.TypePTR), mdns.RcodeSuccess, nil,
			"network_alias_container2.mybridge."},
		// Nothing below is ours; without upstreams Docker answers SERVFAIL.
		{"network not attached", mkQuery("secret.", mdns.TypeA), mdns.RcodeServerFailure, nil, ""},
		{"name.network of a network not attached", mkQuery("c1.other.", mdns.TypeA), mdns.RcodeServerFailure, nil, ""},
		{"PTR of a network not attached", mkQuery("2.0.19.172.in-addr.arpa.", mdns.TypePTR), mdns.RcodeServerFailure, nil, ""},
		{"search domain appended", mkQuery("c1.example.com.", mdns.TypeA), mdns.RcodeServerFailure, nil, ""},
		{"unknown", mkQuery("nope.", mdns.TypeA), mdns.RcodeServerFailure, nil, ""},
		{"partial reverse name", mkQuery("18.172.in-addr.arpa.", mdns.TypePTR), mdns.RcodeServerFailure, nil, ""},
		{"class CHAOS", mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS }),
			mdns.RcodeNotImplemented, nil, ""},
		{"class ANY", mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassANY }),
			mdns.RcodeSuccess, []string{"172.18.0.2"}, ""},
		{"AXFR", mkQuery("mybridge.", mdns.TypeAXFR), mdns.RcodeRefused, nil, ""},
		{"opcode STATUS", mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Opcode = mdns.OpcodeStatus }),
			mdns.RcodeNotImplemented, nil, ""},
		{"no question", mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question = nil }), mdns.RcodeFormatError, nil, ""},
		{"two questions", mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Question = append(m.Question, m.Question[0]) }),
			mdns.RcodeFormatError, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ask(t, r, tc.msg, false)
			if m == nil {
				t.Fatal("no reply")
			}
			if m.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s\n%v", mdns.RcodeToString[m.Rcode], mdns.RcodeToString[tc.rcode], m)
			}
			if m.Id != 0x4242 || !m.Response || !m.RecursionAvailable || !m.RecursionDesired || m.Truncated {
				t.Errorf("header: id %#x qr %v ra %v rd %v tc %v", m.Id, m.Response, m.RecursionAvailable, m.RecursionDesired, m.Truncated)
			}
			got := addrs(m)
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("addresses %v, want %v", got, tc.want)
			}
			for _, rr := range m.Answer {
				if rr.Header().Ttl != 600 || rr.Header().Name != m.Question[0].Name {
					t.Errorf("record %v: want TTL 600 and the question's name", rr)
				}
			}
			if tc.ptr != "" {
				if len(m.Answer) != 1 || m.Answer[0].(*mdns.PTR).Ptr != tc.ptr {
					t.Errorf("PTR answer %v, want %s", m.Answer, tc.ptr)
				}
			}
		})
	}
}

func TestResolverEchoesQuestionCase(t *testing.T) {
	r := NewResolver(fixture(), nil, Config{Networks: []string{"mybridge"}})
	m := ask(t, r, mkQuery("YcEfFoRt.", mdns.TypeA), false)
	if m.Question[0].Name != "YcEfFoRt." || m.Answer[0].Header().Name != "YcEfFoRt." {
		t.Fatalf("question and owner must be the client's spelling: %v", m)
	}
}

func TestResolverEDNS(t *testing.T) {
	r := NewResolver(fixture(), nil, Config{Networks: []string{"mybridge"}})
	m := ask(t, r, mkQuery("c1.", mdns.TypeA, withEDNS(4096)), false)
	if opt := m.IsEdns0(); opt == nil || opt.UDPSize() != ednsSize || len(m.Answer) != 1 {
		t.Fatalf("EDNS query: want an answer and our OPT back, got %v", m)
	}
	bad := mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) {
		m.SetEdns0(4096, false)
		m.IsEdns0().SetVersion(1)
	})
	m = ask(t, r, bad, false)
	if m.Rcode != mdns.RcodeBadVers || len(m.Answer) != 0 {
		t.Fatalf("EDNS version 1: want BADVERS, got %v", m)
	}
}

// A name with many holders does not fit 512 bytes: UDP gets what fits with TC, so that the
// client retries over TCP, which gets everything.
func TestResolverTruncates(t *testing.T) {
	tb := NewTable()
	for i := range 100 {
		tb.Upsert("n", Record{EndpointID: fmt.Sprint(i), Names: []string{"many"},
			IPv4: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})})
	}
	r := NewResolver(tb, nil, Config{Networks: []string{"n"}})
	raw := r.handle(t.Context(), mkQuery("many.", mdns.TypeA), false)
	udp := new(mdns.Msg)
	if err := udp.Unpack(raw); err != nil || !udp.Truncated || len(udp.Answer) != (512-12-10)/16 || len(raw) > 512 {
		t.Fatalf("UDP: want a truncated answer within 512 bytes, got %v tc=%v %d records %d bytes", err, udp.Truncated, len(udp.Answer), len(raw))
	}
	edns := ask(t, r, mkQuery("many.", mdns.TypeA, withEDNS(4096)), false)
	if edns.Truncated || len(edns.Answer) != 100 {
		t.Fatalf("UDP with EDNS 4096: want all 100, got tc=%v %d", edns.Truncated, len(edns.Answer))
	}
	tcp := ask(t, r, mkQuery("many.", mdns.TypeA), true)
	if tcp.Truncated || len(tcp.Answer) != 100 {
		t.Fatalf("TCP: want all 100, got tc=%v %d", tcp.Truncated, len(tcp.Answer))
	}
}

// The seed pings yceffort and reaches each holder in turn: every answer holds the three
// addresses, and the first of them varies.
func TestResolverRoundRobin(t *testing.T) {
	r := NewResolver(fixture(), nil, Config{Networks: []string{"mybridge"}})
	first := map[string]int{}
	orders := map[string]bool{}
	for range 300 {
		m := ask(t, r, mkQuery("yceffort.", mdns.TypeA), false)
		got := addrs(m)
		if len(got) != 3 {
			t.Fatalf("want three addresses, got %v", got)
		}
		first[got[0]]++
		orders[fmt.Sprint(got)] = true
		sorted := slices.Sorted(slices.Values(got))
		if !slices.Equal(sorted, []string{"172.18.0.3", "172.18.0.4", "172.18.0.5"}) {
			t.Fatalf("addresses %v", got)
		}
	}
	if len(first) != 3 || len(orders) < 4 {
		t.Fatalf("answers are not shuffled: first addresses %v, %d distinct orders", first, len(orders))
	}
}

func TestResolverMalformed(t *testing.T) {
	r := NewResolver(fixture(), nil, Config{Networks: []string{"mybridge"}})
	good := mkQuery("c1.", mdns.TypeA)
	resp := mkQuery("c1.", mdns.TypeA, func(m *mdns.Msg) { m.Response = true })
	for _, tc := range []struct {
		name  string
		msg   []byte
		rcode int // -1: no reply
	}{
		{"empty", nil, -1},
		{"short header", good[:5], -1},
		{"a response", resp, -1},
		{"header only", good[:12], mdns.RcodeFormatError},
		{"cut question", good[:len(good)-2], mdns.RcodeFormatError},
		{"label past the end", append(append([]byte{}, good[:12]...), 40, 'a'), mdns.RcodeFormatError},
		{"compression pointer in question", append(append([]byte{}, good[:12]...), 0xC0, 12, 0, 1, 0, 1), mdns.RcodeFormatError},
		{"answer count lies", func() []byte { b := slices.Clone(good); b[7] = 3; return b }(), mdns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := r.handle(t.Context(), slices.Clone(tc.msg), false)
			if tc.rcode < 0 {
				if out != nil {
					t.Fatalf("want no reply, got % x", out)
				}
				return
			}
			if len(out) < headerLen || int(out[3]&0xF) != tc.rcode || out[2]&0x80 == 0 {
				t.Fatalf("want rcode %d, got % x", tc.rcode, out)
			}
		})
	}
	if m := ask(t, r, good, false); len(m.Answer) != 1 {
		t.Fatalf("a good query after bad ones: %v", m)
	}
}

func TestResolverViews(t *testing.T) {
	tb := fixture()
	r := NewResolver(tb, nil, Config{Networks: []string{"mybridge"}})
	a := func(name string) []string { return addrs(ask(t, r, mkQuery(name, mdns.TypeA), false)) }

	// c1 exists on mybridge and on other: the first attached network wins, as in Docker.
	if got := a("c1."); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Fatalf("c1 on mybridge: %v", got)
	}
	r.SetNetworks([]string{"other", "mybridge"})
	if got := a("c1."); !slices.Equal(got, []string{"172.19.0.2"}) {
		t.Fatalf("c1 with other first: %v", got)
	}
	if got := a("secret."); !slices.Equal(got, []string{"172.19.0.2"}) {
		t.Fatalf("secret once connected to other: %v", got)
	}
	if got := a("c1.mybridge."); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Fatalf("c1.mybridge: %v", got)
	}
	r.SetNetworks([]string{"mybridge"}) // disconnect from other
	if got := a("secret."); got != nil {
		t.Fatalf("secret after disconnect: %v", got)
	}

	// Removal and replacement take effect for the next query.
	tb.Remove("mybridge", "ep-a2")
	if got := a("yceffort."); len(got) != 2 || slices.Contains(got, "172.18.0.4") {
		t.Fatalf("yceffort after removing a holder: %v", got)
	}
	tb.Upsert("mybridge", Record{EndpointID: "ep-c1", Names: []string{"c1-renamed"}, IPv4: netip.MustParseAddr("172.18.0.9")})
	if got := a("c1."); got != nil {
		t.Fatalf("old name after replacement: %v", got)
	}
	if got := a("c1-renamed."); !slices.Equal(got, []string{"172.18.0.9"}) {
		t.Fatalf("new name: %v", got)
	}
	m := ask(t, r, mkQuery("2.0.18.172.in-addr.arpa.", mdns.TypePTR), false)
	if m.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("PTR of the replaced address: %v", m)
	}
	tb.RemoveNetwork("mybridge")
	if got := a("yceffort."); got != nil {
		t.Fatalf("after network removal: %v", got)
	}
	tb.Remove("nonexistent", "x") // no-ops
	tb.Remove("other", "nobody")
}

func TestPtrAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"2.0.18.172.in-addr.arpa", "172.18.0.2"},
		{"255.255.255.255.in-addr.arpa", "255.255.255.255"},
		{"0.0.0.0.in-addr.arpa", "0.0.0.0"},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "2001:db8::1"},
		{"256.0.0.1.in-addr.arpa", ""},
		{"01.0.0.1.in-addr.arpa", ""},
		{"1.0.0.in-addr.arpa", ""},
		{"1.1.0.0.1.in-addr.arpa", ""},
		{"a.0.0.1.in-addr.arpa", ""},
		{".0.0.1.in-addr.arpa", ""},
		{"in-addr.arpa", ""},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", ""},
		{"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", ""},
	} {
		ip, ok := ptrAddr([]byte(tc.in))
		got := ""
		if ok {
			got = ip.String()
		}
		if got != tc.want {
			t.Errorf("ptrAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEncodeName(t *testing.T) {
	if b := encodeName("c1.mybridge"); string(b) != "\x02c1\x08mybridge\x00" {
		t.Errorf("got %q", b)
	}
	long := string(make([]byte, 64))
	if b := encodeName(long + ".net"); b != nil {
		t.Errorf("a 64-byte label must not encode")
	}
	tb := NewTable()
	tb.Upsert("n", Record{EndpointID: "e", Names: []string{long}, IPv4: netip.MustParseAddr("10.0.0.1")})
	r := NewResolver(tb, nil, Config{Networks: []string{"n"}})
	if m := ask(t, r, mkQuery("1.0.0.10.in-addr.arpa.", mdns.TypePTR), false); m.Rcode != mdns.RcodeServerFailure {
		t.Errorf("a name that cannot be a PTR target is not answered: %v", m)
	}
}
