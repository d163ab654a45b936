package dns

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

// fixture is the seed's world: c1 and three holders of the alias yceffort on mybridge, an
// IPv6-capable endpoint on net6, and a container on a network the querying sandbox is not on.
func fixture() *Table {
	t := NewTable()
	t.Upsert("mybridge", Record{
		EndpointID: "ep-c1", ContainerID: "855a0c9c1234abcdef",
		Names: []string{"c1", "web", "c1host", "855a0c9c1234", "Dotted."},
		IPv4:  netip.MustParseAddr("172.18.0.2"),
	})
	for i := 1; i <= 3; i++ {
		t.Upsert("mybridge", Record{
			EndpointID: fmt.Sprintf("ep-a%d", i), ContainerID: fmt.Sprintf("cid-a%d", i),
			Names: []string{fmt.Sprintf("network_alias_container%d", i), "yceffort"},
			IPv4:  netip.MustParseAddr(fmt.Sprintf("172.18.0.%d", 2+i)),
		})
	}
	t.Upsert("net6", Record{
		EndpointID: "ep-v6", ContainerID: "cid-v6",
		Names: []string{"v6c"},
		IPv4:  netip.MustParseAddr("172.20.0.2"),
		IPv6:  netip.MustParseAddr("fd00::2"),
	})
	t.Upsert("other", Record{
		EndpointID: "ep-secret", ContainerID: "cid-secret",
		Names: []string{"secret", "c1"},
		IPv4:  netip.MustParseAddr("172.19.0.2"),
	})
	return t
}

// query packs a question the way a client would; mods adjust it first.
func mkQuery(name string, qtype uint16, mods ...func(*mdns.Msg)) []byte {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x4242
	for _, f := range mods {
		f(m)
	}
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func withEDNS(size uint16) func(*mdns.Msg) {
	return func(m *mdns.Msg) { m.SetEdns0(size, false) }
}

// ask runs one query through the resolver's synchronous path and unpacks the reply; nil when
// the resolver sent nothing.
func ask(t testing.TB, r *Resolver, msg []byte, tcp bool) *mdns.Msg {
	t.Helper()
	resp := r.handle(context.Background(), msg, tcp)
	if resp == nil {
		return nil
	}
	m := new(mdns.Msg)
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("reply does not unpack: %v (% x)", err, resp)
	}
	return m
}

// addrs lists the A and AAAA answers of m, in order.
func addrs(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch rr := rr.(type) {
		case *mdns.A:
			out = append(out, rr.A.String())
		case *mdns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	return out
}
