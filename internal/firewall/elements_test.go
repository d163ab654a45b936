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
	for _, p := range []Published{
		{Bridge: "br-a", ContainerIP: addr("172.30.0.2"), Mapping: portmap.Mapping{HostPort: 8080, ContainerPort: 80, Proto: portmap.TCP}},
		{Bridge: "cnet0", ContainerIP: addr("172.17.0.9"), Mapping: portmap.Mapping{HostIP: addr("127.0.0.1"), HostPort: 65535, ContainerPort: 1, Proto: portmap.UDP}},
		{Bridge: "br-0123456789ab", ContainerIP: addr("10.0.0.2"), Mapping: portmap.Mapping{HostIP: addr("192.168.1.10"), HostPort: 1, ContainerPort: 65535, Proto: portmap.SCTP}},
	} {
		set, el, err := portElement(p)
		if err != nil {
			t.Fatal(err)
		}
		wantSet := mapPortsAny
		if p.HostIP.IsValid() {
			wantSet = mapPortsIP
		}
		if set != wantSet {
			t.Errorf("%v went to %s, want %s", p, set, wantSet)
		}
		back, ok := decodePort(set, el)
		if !ok || back != p {
			t.Errorf("decode(encode(%+v)) = %+v", p, back)
		}
	}
	// The layout the rules' registers expect: proto word, then port word, padded.
	_, el, _ := portElement(Published{Bridge: "b", ContainerIP: addr("172.30.0.2"), Mapping: portmap.Mapping{HostPort: 8080, ContainerPort: 80, Proto: portmap.TCP}})
	if !bytes.Equal(el.Key, []byte{6, 0, 0, 0, 0x1f, 0x90, 0, 0}) || !bytes.Equal(el.Val, []byte{172, 30, 0, 2, 0, 80, 0, 0}) {
		t.Errorf("element %x : %x", el.Key, el.Val)
	}
	// 0.0.0.0 is all addresses, like no address.
	set, _, _ := portElement(Published{Bridge: "b", ContainerIP: addr("172.30.0.2"), Mapping: portmap.Mapping{HostIP: addr("0.0.0.0"), HostPort: 1, ContainerPort: 1, Proto: portmap.TCP}})
	if set != mapPortsAny {
		t.Errorf("0.0.0.0 went to %s", set)
	}
}

func TestPortElementInvalid(t *testing.T) {
	ok := Published{Bridge: "b", ContainerIP: addr("172.30.0.2"), Mapping: portmap.Mapping{HostPort: 1, ContainerPort: 1, Proto: portmap.TCP}}
	for name, mutate := range map[string]func(*Published){
		"no host port":     func(p *Published) { p.HostPort = 0 },
		"host range":       func(p *Published) { p.HostPortEnd = 5 },
		"no cport":         func(p *Published) { p.ContainerPort = 0 },
		"bad proto":        func(p *Published) { p.Proto = "icmp" },
		"v6 container":     func(p *Published) { p.ContainerIP = addr("fd00::2") },
		"v6 host":          func(p *Published) { p.HostIP = addr("::1") },
		"no bridge":        func(p *Published) { p.Bridge = "" },
		"long bridge name": func(p *Published) { p.Bridge = "0123456789abcdef" },
	} {
		p := ok
		mutate(&p)
		if _, _, err := portElement(p); !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("%s: %v, want invalid input", name, err)
		}
	}
}

func TestIntervals(t *testing.T) {
	for _, s := range []string{"172.30.0.0/16", "10.0.0.0/8", "192.168.4.0/22", "10.1.2.3/32", "172.18.5.7/16"} {
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
	if _, err := interval(netip.MustParsePrefix("255.255.255.0/24"), "br"); err == nil {
		t.Errorf("a subnet at the end of the address space was accepted")
	}
	// Adjacent intervals, shuffled, with nft's own 0.0.0.0 end marker: paired correctly.
	a, _ := interval(netip.MustParsePrefix("10.0.0.0/24"), "x")
	b, _ := interval(netip.MustParsePrefix("10.0.1.0/24"), "y")
	marker := nftables.SetElement{Key: []byte{0, 0, 0, 0}, IntervalEnd: true}
	ivs := intervals([]nftables.SetElement{b[1], a[0], marker, b[0], a[1]})
	if len(ivs) != 2 || toPrefix(ivs[0]).String() != "10.0.0.0/24" || toPrefix(ivs[1]).String() != "10.0.1.0/24" ||
		ivs[0].start.Comment != "x" || ivs[1].start.Comment != "y" {
		t.Errorf("paired %+v", ivs)
	}
}

func TestDiff(t *testing.T) {
	l := newLayout()
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
	e, err := networkElements(Network{Bridge: "br-i", Subnets: []netip.Prefix{netip.MustParsePrefix("172.29.0.0/16")}, Masquerade: true, ICC: false, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	for set, n := range map[string]int{setBridges: 1, setSameBridge: 1, setNoICC: 1, setInternal: 1, setSubnets: 2, setMasquerade: 0} {
		if len(e[set]) != n {
			t.Errorf("%s has %d elements, want %d (an internal network is never masqueraded)", set, len(e[set]), n)
		}
	}
	if _, err := networkElements(Network{Bridge: "br-6", Subnets: []netip.Prefix{netip.MustParsePrefix("fd00::/64")}}); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Errorf("IPv6 subnet: %v", err)
	}
}
