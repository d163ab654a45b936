package dns

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

// benchTable is a network of 100 endpoints, each with a name, a hostname and a short id;
// three of them share the alias "web".
func benchTable() *Table {
	t := NewTable()
	for i := range 100 {
		names := []string{fmt.Sprintf("container%d", i), fmt.Sprintf("host%d", i), fmt.Sprintf("%012x", i)}
		if i < 3 {
			names = append(names, "web")
		}
		t.Upsert("bench", Record{EndpointID: fmt.Sprint(i), Names: names,
			IPv4: netip.AddrFrom4([4]byte{172, 18, 0, byte(i + 2)})})
	}
	return t
}

// benchRespond measures what the UDP read loop does per query: copy into the read buffer,
// answer in place.
func benchRespond(b *testing.B, q []byte, wantAnswers int) {
	r := NewResolver(benchTable(), nil, Config{Networks: []string{"other", "bench"}})
	buf := make([]byte, udpReadBuf)
	resp, act := r.respond(buf[:copy(buf, q)], false)
	if act != actReply || int(resp[7]) != wantAnswers {
		b.Fatalf("setup: action %d, % x", act, resp)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.respond(buf[:copy(buf, q)], false)
	}
}

func BenchmarkRespondA(b *testing.B) {
	benchRespond(b, mkQuery("container42.", mdns.TypeA), 1)
}

func BenchmarkRespondNameNetwork(b *testing.B) {
	benchRespond(b, mkQuery("container42.bench.", mdns.TypeA), 1)
}

func BenchmarkRespondAlias3(b *testing.B) {
	benchRespond(b, mkQuery("web.", mdns.TypeA), 3)
}

func BenchmarkRespondAAAANoData(b *testing.B) {
	benchRespond(b, mkQuery("container42.", mdns.TypeAAAA), 0)
}

func BenchmarkRespondPTR(b *testing.B) {
	benchRespond(b, mkQuery("44.0.18.172.in-addr.arpa.", mdns.TypePTR), 1)
}

func BenchmarkRespondEDNS(b *testing.B) {
	benchRespond(b, mkQuery("container42.", mdns.TypeA, withEDNS(1232)), 1)
}

// BenchmarkMsgBaseline is what answering the same A query costs through dns.Msg values (unpack,
// reply, pack), the way a dns.Server handler works: the cost the wire-level path avoids.
func BenchmarkMsgBaseline(b *testing.B) {
	q := mkQuery("container42.", mdns.TypeA)
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		m := new(mdns.Msg)
		if err := m.Unpack(q); err != nil {
			b.Fatal(err)
		}
		resp := new(mdns.Msg).SetReply(m)
		resp.RecursionAvailable = true
		resp.Answer = []mdns.RR{&mdns.A{
			Hdr: mdns.RR_Header{Name: m.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: ttl},
			A:   net.IPv4(172, 18, 0, 44),
		}}
		if _, err := resp.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTableUpsert(b *testing.B) {
	t := benchTable()
	rec := Record{EndpointID: "7", Names: []string{"container7", "host7", "web"}, IPv4: netip.MustParseAddr("172.18.0.9")}
	b.ReportAllocs()
	for b.Loop() {
		t.Upsert("bench", rec)
	}
}

// BenchmarkListenerUDP is a round trip through a listener on loopback, clients in parallel
// (one connected socket each, one query in flight each): the kernel's share included.
func BenchmarkListenerUDP(b *testing.B) {
	r := NewResolver(benchTable(), nil, Config{Networks: []string{"bench"}})
	udp, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	tcp, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		b.Fatal(err)
	}
	l := serveSockets(udp, tcp, r)
	defer l.Close()
	q := mkQuery("container42.", mdns.TypeA)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.DialUDP("udp4", nil, udp.LocalAddr().(*net.UDPAddr))
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		for pb.Next() {
			if _, err := c.Write(q); err != nil {
				b.Error(err)
				return
			}
			if n, err := c.Read(buf); err != nil || n < headerLen || buf[7] != 1 {
				b.Errorf("%v % x", err, buf[:n])
				return
			}
		}
	})
}
