package firewall

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/nftables"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/portmap"
)

// These tests need no root: they check the element encoding and the diff Sync applies.

func TestPortElementRoundTrip(t *testing.T) {
	m := func(host string, hp, cp uint16, proto string) portmap.Mapping {
		out := portmap.Mapping{HostPort: hp, ContainerPort: cp, Proto: proto}
		if host != "" {
			out.HostIP = addr(host)
		}
		return out
	}
	for _, tc := range []struct {
		p     Published
		table int
		set   string
	}{
		{Published{Bridge: "br-a", ContainerIP: addr("172.30.0.2"), Mapping: m("", 8080, 80, portmap.TCP)}, tableIP, mapPortsAny},
		{Published{Bridge: "cnet0", ContainerIP: addr("172.17.0.9"), Mapping: m("127.0.0.1", 65535, 1, portmap.UDP)}, tableIP, mapPortsIP},
		{Published{Bridge: "br-0123456789ab", ContainerIP: addr("10.0.0.2"), Mapping: m("192.168.1.10", 1, 65535, portmap.SCTP)}, tableIP, mapPortsIP},
		{Published{Bridge: "br-a", ContainerIP: addr("fd00:30::2"), Mapping: m("", 8080, 80, portmap.TCP)}, tableIP6, mapPortsAny},
		{Published{Bridge: "cnet0", ContainerIP: addr("2001:db8::ffff:1"), Mapping: m("::1", 65535, 1, portmap.UDP)}, tableIP6, mapPortsIP},
		{Published{Bridge: "br-6", ContainerIP: addr("fd00::2"), Mapping: m("2001:db8:1::10", 1, 65535, portmap.SCTP)}, tableIP6, mapPortsIP},
	} {
		table, set, el, err := portElement(tc.p)
		if err != nil {
			t.Fatalf("%+v: %v", tc.p, err)
		}
		if table != tc.table || set != tc.set {
			t.Errorf("%+v went to %s of %s, want %s of %s", tc.p, set, families[table].name, tc.set, families[tc.table].name)
		}
		back, ok := decodePort(set, el)
		if !ok || back != tc.p {
			t.Errorf("decode(encode(%+v)) = %+v", tc.p, back)
		}
	}
	// The layouts the rules' registers expect: address words, proto word, port word, padded.
	for _, tc := range []struct {
		p        Published
		key, val []byte
	}{{
		p:   Published{Bridge: "b", ContainerIP: addr("172.30.0.2"), Mapping: m("", 8080, 80, portmap.TCP)},
		key: []byte{6, 0, 0, 0, 0x1f, 0x90, 0, 0},
		val: []byte{172, 30, 0, 2, 0, 80, 0, 0},
	}, {
		p:   Published{Bridge: "b", ContainerIP: addr("fd00::2"), Mapping: m("", 8080, 80, portmap.UDP)},
		key: []byte{17, 0, 0, 0, 0x1f, 0x90, 0, 0},
		val: []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 80, 0, 0},
	}, {
		p:   Published{Bridge: "b", ContainerIP: addr("fd00::2"), Mapping: m("2001:db8::1", 443, 8443, portmap.TCP)},
		key: []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 0x01, 0xbb, 0, 0},
		val: []byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x20, 0xfb, 0, 0},
	}} {
		_, _, el, _ := portElement(tc.p)
		if !bytes.Equal(el.Key, tc.key) || !bytes.Equal(el.Val, tc.val) {
			t.Errorf("%+v: element %x : %x, want %x : %x", tc.p, el.Key, el.Val, tc.key, tc.val)
		}
	}
	// 0.0.0.0 is all addresses, like no address, for both families; :: for IPv6.
	for _, tc := range []struct{ container, host string }{{"172.30.0.2", "0.0.0.0"}, {"fd00::2", "0.0.0.0"}, {"fd00::2", "::"}} {
		_, set, _, err := portElement(Published{Bridge: "b", ContainerIP: addr(tc.container), Mapping: m(tc.host, 1, 1, portmap.TCP)})
		if err != nil || set != mapPortsAny {
			t.Errorf("%s to %s went to %s (%v), want %s", tc.host, tc.container, set, err, mapPortsAny)
		}
	}
	// Elements of no known shape are not ports.
	for _, el := range []nftables.SetElement{
		{Key: make([]byte, 8), Val: make([]byte, 12)},
		{Key: make([]byte, 12), Val: make([]byte, 20)},
		{Key: make([]byte, 9), Val: make([]byte, 8)},
	} {
		for _, set := range []string{mapPortsAny, mapPortsIP} {
			if p, ok := decodePort(set, el); ok {
				t.Errorf("decodePort(%s, %d-byte key : %d-byte value) = %+v", set, len(el.Key), len(el.Val), p)
			}
		}
	}
}

func TestPortElementInvalid(t *testing.T) {
	ok := Published{Bridge: "b", ContainerIP: addr("172.30.0.2"), Mapping: portmap.Mapping{HostPort: 1, ContainerPort: 1, Proto: portmap.TCP}}
	for name, mutate := range map[string]func(*Published){
		"no host port":          func(p *Published) { p.HostPort = 0 },
		"host range":            func(p *Published) { p.HostPortEnd = 5 },
		"no cport":              func(p *Published) { p.ContainerPort = 0 },
		"bad proto":             func(p *Published) { p.Proto = "icmp" },
		"no container address":  func(p *Published) { p.ContainerIP = netip.Addr{} },
		"v4-mapped container":   func(p *Published) { p.ContainerIP = addr("::ffff:172.30.0.2") },
		"zoned container":       func(p *Published) { p.ContainerIP = addr("fe80::2%eth0") },
		"v6 host, v4 container": func(p *Published) { p.HostIP = addr("::1") },
		":: host, v4 container": func(p *Published) { p.HostIP = addr("::") },
		"v4 host, v6 container": func(p *Published) { p.ContainerIP, p.HostIP = addr("fd00::2"), addr("127.0.0.1") },
		"v4-mapped host":        func(p *Published) { p.ContainerIP, p.HostIP = addr("fd00::2"), addr("::ffff:10.0.0.1") },
		"no bridge":             func(p *Published) { p.Bridge = "" },
		"long bridge name":      func(p *Published) { p.Bridge = "0123456789abcdef" },
	} {
		p := ok
		mutate(&p)
		if _, _, _, err := portElement(p); !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("%s: %v, want invalid input", name, err)
		}
	}
}

func TestApplies(t *testing.T) {
	for _, tc := range []struct {
		host   string // "" is none
		v4, v6 bool   // applies to an IPv4, an IPv6 container address
	}{
		{"", true, true},
		{"0.0.0.0", true, false}, // explicit: IPv4 only, as in Docker

		{"::", false, true},
		{"127.0.0.1", true, false},
		{"10.99.0.1", true, false},
		{"::1", false, true},
		{"fd00:99::1", false, true},
	} {
		m := portmap.Mapping{HostPort: 80, ContainerPort: 80, Proto: portmap.TCP}
		if tc.host != "" {
			m.HostIP = addr(tc.host)
		}
		if got := Applies(addr("172.30.0.2"), m); got != tc.v4 {
			t.Errorf("Applies(IPv4, host %q) = %v, want %v", tc.host, got, tc.v4)
		}
		if got := Applies(addr("fd00:30::2"), m); got != tc.v6 {
			t.Errorf("Applies(IPv6, host %q) = %v, want %v", tc.host, got, tc.v6)
		}
		if Applies(netip.Addr{}, m) {
			t.Errorf("Applies(no address, host %q) = true", tc.host)
		}
	}
}

func TestIntervals(t *testing.T) {
	for _, s := range []string{"172.30.0.0/16", "10.0.0.0/8", "192.168.4.0/22", "10.1.2.3/32", "172.18.5.7/16", "0.0.0.0/1",
		"fd00:30::/64", "2001:db8::/32", "fd00::1/128", "fd00:30:1:2::/48", "2001:db8::/61", "::/1", "fe80::/10"} {
		p := netip.MustParsePrefix(s)
		els, err := interval(p, "br")
		if err != nil {
			t.Fatal(err)
		}
		ivs := intervals(els)
		if len(ivs) != 1 || toPrefix(ivs[0]) != p.Masked() || ivs[0].start.Comment != "br" {
			t.Errorf("%s: intervals %+v", s, ivs)
		}
	}
	// The end is the address after the last, of the prefix's length.
	for p, end := range map[string][]byte{
		"172.30.0.0/16": {172, 31, 0, 0},
		"fd00:30::/64":  {0xfd, 0, 0, 0x30, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		"fd00::1/128":   {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2},
		"2001:db8::/61": {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0},
	} {
		els, _ := interval(netip.MustParsePrefix(p), "br")
		if len(els) != 2 || !els[1].IntervalEnd || !bytes.Equal(els[1].Key, end) {
			t.Errorf("%s: elements %+v, want the end %x", p, els, end)
		}
	}
	for _, s := range []string{"255.255.255.0/24", "0.0.0.0/0", "ffff::/16", "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "::ffff:10.0.0.0/104"} {
		if _, err := interval(netip.MustParsePrefix(s), "br"); !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("subnet %s: %v, want invalid input", s, err)
		}
	}
	// Adjacent intervals, shuffled, with nft's own end markers: paired correctly.
	for _, tc := range []struct {
		a, b   string
		marker []byte
	}{
		{"10.0.0.0/24", "10.0.1.0/24", make([]byte, 4)},
		{"fd00:30::/64", "fd00:30:0:1::/64", make([]byte, 16)},
	} {
		a, _ := interval(netip.MustParsePrefix(tc.a), "x")
		b, _ := interval(netip.MustParsePrefix(tc.b), "y")
		marker := nftables.SetElement{Key: tc.marker, IntervalEnd: true}
		ivs := intervals([]nftables.SetElement{b[1], a[0], marker, b[0], a[1]})
		if len(ivs) != 2 || toPrefix(ivs[0]).String() != tc.a || toPrefix(ivs[1]).String() != tc.b ||
			ivs[0].start.Comment != "x" || ivs[1].start.Comment != "y" {
			t.Errorf("paired %+v", ivs)
		}
	}
}

func TestDiff(t *testing.T) {
	l := newLayout(families[tableIP])
	el := func(k, v byte, c string) nftables.SetElement {
		return nftables.SetElement{Key: []byte{k}, Val: []byte{v}, Comment: c}
	}
	cur := []nftables.SetElement{el(1, 1, "a"), el(2, 2, "a"), el(3, 3, "a")}
	want := []nftables.SetElement{el(1, 1, "a"), el(2, 9, "a"), el(4, 4, "b")}
	add, del := diff(l.byName[mapPortsAny], cur, want)
	if len(add) != 2 || add[0].Key[0] != 2 || add[0].Val[0] != 9 || add[1].Key[0] != 4 {
		t.Errorf("add %+v", add)
	}
	if len(del) != 2 || del[0].Key[0] != 2 || del[0].Val[0] != 2 || del[1].Key[0] != 3 {
		t.Errorf("del %+v", del)
	}

	x, _ := interval(netip.MustParsePrefix("10.0.0.0/24"), "x")
	y, _ := interval(netip.MustParsePrefix("10.0.1.0/24"), "y")
	y2, _ := interval(netip.MustParsePrefix("10.0.1.0/25"), "y")
	add, del = diff(l.byName[setSubnets], append(x, y...), append(x, y2...))
	if len(add) != 2 || len(del) != 2 || toPrefix(ivl{add[0], add[1]}).String() != "10.0.1.0/25" ||
		toPrefix(ivl{del[0], del[1]}).String() != "10.0.1.0/24" {
		t.Errorf("interval diff: add %+v del %+v", add, del)
	}
}

func TestNetworkElements(t *testing.T) {
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name string
		n    Network
		want [nTables]map[string]int // elements per set of each table
	}{{
		name: "internal IPv4, icc off",
		n:    Network{Bridge: "br-i", Subnets: []netip.Prefix{pfx("172.29.0.0/16")}, Masquerade: true, ICC: false, Internal: true},
		// An internal network is never masqueraded; its interface elements cover IPv6 too.
		want: [nTables]map[string]int{
			{setBridges: 1, setSameBridge: 1, setNoICC: 1, setInternal: 1, setSubnets: 2, setMasquerade: 0},
			{setBridges: 1, setSameBridge: 1, setNoICC: 1, setInternal: 1, setSubnets: 0, setMasquerade: 0},
		},
	}, {
		name: "dual stack",
		n:    Network{Bridge: "br-d", Subnets: []netip.Prefix{pfx("172.30.0.0/16"), pfx("fd00:30::/64"), pfx("fd00:31::/64")}, Masquerade: true, ICC: true},
		want: [nTables]map[string]int{
			{setBridges: 1, setSameBridge: 1, setNoICC: 0, setInternal: 0, setSubnets: 2, setMasquerade: 2},
			{setBridges: 1, setSameBridge: 1, setNoICC: 0, setInternal: 0, setSubnets: 4, setMasquerade: 4},
		},
	}, {
		name: "IPv6 only, no masquerade",
		n:    Network{Bridge: "br-6", Subnets: []netip.Prefix{pfx("fd00:6::/64")}, ICC: false},
		want: [nTables]map[string]int{
			{setBridges: 1, setSameBridge: 1, setNoICC: 1, setInternal: 0, setSubnets: 0, setMasquerade: 0},
			{setBridges: 1, setSameBridge: 1, setNoICC: 1, setInternal: 0, setSubnets: 2, setMasquerade: 0},
		},
	}} {
		b, err := networkElements(tc.n)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for tbl, want := range tc.want {
			for set, n := range want {
				if len(b[tbl][set]) != n {
					t.Errorf("%s: %s of %s has %d elements, want %d", tc.name, set, families[tbl].name, len(b[tbl][set]), n)
				}
			}
		}
	}
	for _, p := range []string{"::ffff:10.0.0.0/104", "ffff::/16", "::/0"} {
		if _, err := networkElements(Network{Bridge: "br-x", Subnets: []netip.Prefix{pfx(p)}}); !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("subnet %s: %v, want invalid input", p, err)
		}
	}
}
