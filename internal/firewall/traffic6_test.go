package firewall

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/portmap"
)

// IPv6 networks of the testbed: br-a dual-stack, br-b IPv6 only. The host's underlay address
// is hostAddr6, the client's clientAddr6 (see testbed_test.go).
var (
	netAD = Network{Bridge: "br-a", Subnets: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd00:30::/64")}, Masquerade: true, ICC: true}
	netB6 = Network{Bridge: "br-b", Subnets: []netip.Prefix{netip.MustParsePrefix("fd00:31::/64")}, Masquerade: true, ICC: true}
)

// mapping is a reserved mapping built directly, so that IPv6 host addresses do not depend on
// package portmap's parsing; hostIP "" is none.
func mapping(hostIP string, hostPort, containerPort uint16, proto string) portmap.Mapping {
	m := portmap.Mapping{HostPort: hostPort, ContainerPort: containerPort, Proto: proto}
	if hostIP != "" {
		m.HostIP = addr(hostIP)
	}
	return m
}

// publish publishes ms to every address of a container, as the daemon does: each AddPorts
// takes the mappings that apply to that address's family.
func (tb *testbed) publish(bridge string, ms []portmap.Mapping, ips ...string) {
	tb.t.Helper()
	for _, ip := range ips {
		if err := tb.fw.AddPorts(bridge, addr(ip), ms); err != nil {
			tb.t.Fatalf("AddPorts(%s, %s): %v", bridge, ip, err)
		}
	}
}

// v6 is an IPv6 address and port as net.Dial takes them.
func v6(ip, port string) string { return "[" + ip + "]:" + port }

// TestPublishedPorts6: on a dual-stack container, `-p 8080:80` and `-p 5353:80/udp` reach it
// over IPv6 (and IPv4) from another host, which keeps its own source address; from the host
// through its own address and its gateway address; and from containers of the same network
// through the host's address (hairpin, masqueraded to the gateway). Routing straight to the
// container's IPv6 address is dropped. The host's own [::1] is not served (see the package
// documentation: the kernel drops the answers).
func TestPublishedPorts6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netAD)
	a1 := tb.container("a1", "br-a", "172.30.0.2", "fd00:30::2")
	a2 := tb.container("a2", "br-a", "fd00:30::3")
	tb.route(tb.client, "fd00:30::/64", hostAddr6)
	web := tb.serve(a1, 80)
	tb.serve(a1, 81)
	tb.publish("br-a", specs(t, "8080:80", "5353:80/udp"), "172.30.0.2", "fd00:30::2")

	tb.reach(tb.client, "tcp6", v6(hostAddr6, "8080"), clientAddr6)
	tb.reach(tb.client, "udp6", v6(hostAddr6, "5353"), clientAddr6)
	tb.reach(tb.client, "tcp4", hostAddr+":8080", clientAddr) // the same mapping, on IPv4
	tb.reach(tb.host, "tcp6", v6(hostAddr6, "8080"), hostAddr6)
	tb.reach(tb.host, "udp6", v6(hostAddr6, "5353"), hostAddr6)
	tb.reach(tb.host, "tcp6", v6("fd00:30::1", "8080"), "fd00:30::1")
	// Hairpin: to itself and to a neighbour, through the host's address.
	tb.reach(a1, "tcp6", v6(hostAddr6, "8080"), "fd00:30::1")
	tb.reach(a2, "tcp6", v6(hostAddr6, "8080"), "fd00:30::1")
	tb.reach(a2, "udp6", v6(hostAddr6, "5353"), "fd00:30::1")
	// Only published ports: routing straight to the container's address is dropped.
	tb.blocked(tb.client, "tcp6", v6("fd00:30::2", "81"), nil)
	tb.blocked(tb.client, "tcp6", v6("fd00:30::2", "80"), web)
	// Documented limitation: the host's own IPv6 loopback is not served by NAT.
	tb.blocked(tb.host, "tcp6", v6("::1", "8080"), web)
	if t.Failed() {
		t.Log(tb.nft("list", "ruleset"))
	}
}

// TestPublishedOnAddress6: a port published on one IPv6 address of the host is reached there
// and not on the host's other IPv6 address nor on its IPv4 one; a port on :: is reached on
// every IPv6 address and no IPv4 one; a port on an IPv4 address only over IPv4. The daemon
// passes every mapping with each container address, and only those of the address's family
// are published, as Current shows.
func TestPublishedOnAddress6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netAD)
	tb.addrUp(tb.host, "up0", "fd00:99::10/64") // a second IPv6 address of the host
	a1 := tb.container("a1", "br-a", "172.30.0.2", "fd00:30::2")
	s := tb.serve(a1, 80)
	ms := []portmap.Mapping{
		mapping(hostAddr6, 8082, 80, portmap.TCP),
		mapping(hostAddr6, 8082, 80, portmap.UDP),
		mapping("::", 8083, 80, portmap.TCP),
		mapping(hostAddr, 8084, 80, portmap.TCP),
	}
	tb.publish("br-a", ms, "172.30.0.2", "fd00:30::2")

	tb.reach(tb.client, "tcp6", v6(hostAddr6, "8082"), clientAddr6)
	tb.reach(tb.client, "udp6", v6(hostAddr6, "8082"), clientAddr6)
	tb.reach(tb.host, "tcp6", v6(hostAddr6, "8082"), hostAddr6)
	tb.blocked(tb.client, "tcp6", v6("fd00:99::10", "8082"), s)
	tb.blocked(tb.client, "udp6", v6("fd00:99::10", "8082"), s)
	tb.blocked(tb.client, "tcp4", hostAddr+":8082", s)

	tb.reach(tb.client, "tcp6", v6(hostAddr6, "8083"), clientAddr6)
	tb.reach(tb.client, "tcp6", v6("fd00:99::10", "8083"), clientAddr6)
	tb.blocked(tb.client, "tcp4", hostAddr+":8083", s)

	tb.reach(tb.client, "tcp4", hostAddr+":8084", clientAddr)
	tb.blocked(tb.client, "tcp6", v6(hostAddr6, "8084"), s)

	// In Current's order; the :: mapping reads back without host address (all addresses of
	// the container's family).
	want := []Published{
		{Bridge: "br-a", ContainerIP: addr("fd00:30::2"), Mapping: mapping("", 8083, 80, portmap.TCP)},
		{Bridge: "br-a", ContainerIP: addr("172.30.0.2"), Mapping: ms[3]},
		{Bridge: "br-a", ContainerIP: addr("fd00:30::2"), Mapping: ms[0]},
		{Bridge: "br-a", ContainerIP: addr("fd00:30::2"), Mapping: ms[1]},
	}
	if got := tb.current().Ports; !reflect.DeepEqual(got, want) {
		t.Errorf("Current().Ports = %+v, want %+v", got, want)
	}
	if out := tb.nft("list", "map", "ip6", TableName, mapPortsIP); !strings.Contains(out, hostAddr6+` . tcp . 8082 comment "br-a" : fd00:30::2 . 80`) {
		t.Errorf("nft does not read the IPv6 element as published:\n%s", out)
	}
	if t.Failed() {
		t.Log(tb.nft("list", "ruleset"))
	}
}

// TestMasquerade6: a container of a masqueraded network reaches the client host over IPv6
// with the host's address as source; one of a network without masquerade keeps its own (the
// client host routes it back through the host).
func TestMasquerade6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netAD)
	noMasq := netB6
	noMasq.Masquerade = false
	tb.network(noMasq)
	a1 := tb.container("a1", "br-a", "172.30.0.2", "fd00:30::2")
	b1 := tb.container("b1", "br-b", "fd00:31::2")
	tb.route(tb.client, "fd00:31::/64", hostAddr6)
	tb.serve(tb.client, 9000)
	tb.reach(a1, "tcp6", v6(clientAddr6, "9000"), hostAddr6)
	tb.reach(a1, "udp6", v6(clientAddr6, "9000"), hostAddr6)
	tb.reach(a1, "tcp4", clientAddr+":9000", hostAddr)
	tb.reach(b1, "tcp6", v6(clientAddr6, "9000"), "fd00:31::2")
	if !ping(a1, clientAddr6) {
		t.Errorf("ICMPv6 echo from a masqueraded container to the client host failed")
	}
	if t.Failed() {
		t.Log(tb.nft("list", "ruleset"))
	}
}

// TestIsolation6: over IPv6, containers of two networks (one dual-stack, one IPv6 only) cannot
// reach each other in either direction, by TCP, UDP or ICMPv6, while each reaches its own
// network's containers and the client host. Emptying the ip6 forward chain opens the way.
func TestIsolation6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netAD)
	tb.network(netB6)
	a1 := tb.container("a1", "br-a", "172.30.0.2", "fd00:30::2")
	a2 := tb.container("a2", "br-a", "fd00:30::3")
	b1 := tb.container("b1", "br-b", "fd00:31::2")
	sa, sb := tb.serve(a1, 80), tb.serve(b1, 80)
	tb.serve(tb.client, 9000)

	for _, proto := range []string{"tcp6", "udp6"} {
		tb.blocked(a1, proto, v6("fd00:31::2", "80"), sb)
		tb.blocked(b1, proto, v6("fd00:30::2", "80"), sa)
		tb.reach(a2, proto, v6("fd00:30::2", "80"), "fd00:30::3")
		tb.reach(b1, proto, v6(clientAddr6, "9000"), hostAddr6)
	}
	if ping(a1, "fd00:31::2") || ping(b1, "fd00:30::2") {
		t.Errorf("ICMPv6 crosses between networks")
	}
	tb.withoutChain(tableIP6, "forward", func() {
		tb.reach(a1, "tcp6", v6("fd00:31::2", "80"), "fd00:30::2")
		tb.reach(b1, "udp6", v6("fd00:30::2", "80"), "fd00:31::2")
	})
	if !ping(a2, "fd00:30::2") {
		t.Errorf("ICMPv6 within a network fails")
	}
}

// TestInternal6: a container of a dual-stack --internal network reaches over IPv6 neither the
// client host nor the other network, and the client host cannot route to it; containers of
// the network still reach each other.
func TestInternal6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	internal := Network{Bridge: "br-i", Subnets: []netip.Prefix{netip.MustParsePrefix("172.29.0.0/16"), netip.MustParsePrefix("fd00:29::/64")},
		Masquerade: true, ICC: true, Internal: true}
	tb.network(internal)
	tb.network(netAD)
	i1 := tb.container("i1", "br-i", "fd00:29::2")
	i2 := tb.container("i2", "br-i", "fd00:29::3")
	a1 := tb.container("a1", "br-a", "fd00:30::2")
	tb.route(tb.client, "fd00:29::/64", hostAddr6)
	sc, si := tb.serve(tb.client, 9000), tb.serve(i1, 80)
	tb.serve(a1, 80)

	tb.blocked(i1, "tcp6", v6(clientAddr6, "9000"), sc)
	tb.blocked(i1, "udp6", v6(clientAddr6, "9000"), sc)
	if ping(i1, clientAddr6) {
		t.Errorf("an internal container pings the client host over IPv6")
	}
	tb.blocked(tb.client, "tcp6", v6("fd00:29::2", "80"), si)
	tb.blocked(i1, "tcp6", v6("fd00:30::2", "80"), nil)
	tb.blocked(a1, "tcp6", v6("fd00:29::2", "80"), si)
	tb.reach(i2, "tcp6", v6("fd00:29::2", "80"), "fd00:29::3")
	want := internal
	want.Masquerade = false // never for an internal network
	if st := tb.current(); len(st.Networks) != 2 || !reflect.DeepEqual(st.Networks[1], want) {
		t.Errorf("Current() = %+v, want br-i as %+v", st.Networks, want)
	}
	tb.withoutChain(tableIP6, "forward", func() { tb.reach(i1, "tcp6", v6(clientAddr6, "9000"), "fd00:29::2") })
}

// TestICCDisabled6: on a dual-stack network with enable_icc=false containers cannot reach each
// other over IPv6 (TCP, UDP, ICMPv6; neighbour discovery is ICMPv6 and is dropped too, as
// with Docker); they still reach the client host and each other's published ports through
// the host's address, and a network with icc on is unaffected. Only the icc=false bridge has
// nf_call_ip6tables on.
func TestICCDisabled6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	noICC := Network{Bridge: "br-n", Subnets: []netip.Prefix{netip.MustParsePrefix("172.28.0.0/16"), netip.MustParsePrefix("fd00:28::/64")},
		Masquerade: true, ICC: false}
	tb.network(noICC)
	tb.network(netAD)
	n1 := tb.container("n1", "br-n", "fd00:28::2")
	n2 := tb.container("n2", "br-n", "fd00:28::3")
	a1 := tb.container("a1", "br-a", "fd00:30::2")
	a2 := tb.container("a2", "br-a", "fd00:30::3")
	sn := tb.serve(n2, 80)
	tb.serve(a2, 80)
	tb.serve(tb.client, 9000)

	tb.blocked(n1, "tcp6", v6("fd00:28::3", "80"), sn)
	tb.blocked(n1, "udp6", v6("fd00:28::3", "80"), sn)
	if ping(n1, "fd00:28::3") {
		t.Errorf("ICMPv6 between containers of an icc=false network")
	}
	tb.reach(n1, "tcp6", v6(clientAddr6, "9000"), hostAddr6)
	// A published port of n2 is reachable from n1 through the host's address, as from anywhere.
	tb.publish("br-n", specs(t, "8080:80"), "fd00:28::3")
	tb.reach(n1, "tcp6", v6(hostAddr6, "8080"), "fd00:28::1")
	tb.withoutChain(tableIP6, "forward", func() {
		// The neighbour solicitations above were dropped too: n1 may still hold ::3 as
		// FAILED, which makes a connect fail at once (EHOSTUNREACH) until it expires.
		if out, err := run(n1, "ip", "-6", "neigh", "flush", "all"); err != nil {
			t.Fatal(err, out)
		}
		tb.reach(n1, "tcp6", v6("fd00:28::3", "80"), "fd00:28::2")
	})
	tb.reach(a1, "tcp6", v6("fd00:30::3", "80"), "fd00:30::2")
	if !ping(a1, "fd00:30::3") {
		t.Errorf("ICMPv6 within an icc=true network fails")
	}
	if out, _ := run(tb.host, "ip", "-d", "link", "show", "br-n"); !strings.Contains(out, "nf_call_ip6tables 1") {
		t.Errorf("the icc=false bridge does not have nf_call_ip6tables on:\n%s", out)
	}
	if out, _ := run(tb.host, "ip", "-d", "link", "show", "br-a"); !strings.Contains(out, "nf_call_ip6tables 0") {
		t.Errorf("the icc=true bridge had nf_call_ip6tables turned on:\n%s", out)
	}
}

// TestLoopbackOnly6: IPv6 needs no guard chain. A port published on [::1] is not reached by a
// packet the client host addresses to ::1 and sends to the host's MAC (the IPv6 form of
// moby#41872), because the kernel drops it before the prerouting hook; the same spoofed packet
// to a port published on the host's own IPv6 address arrives, so the spoofing is real.
func TestLoopbackOnly6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netAD)
	a1 := tb.container("a1", "br-a", "fd00:30::2")
	s := tb.serve(a1, 80)
	tb.publish("br-a", []portmap.Mapping{mapping("::1", 8081, 80, portmap.UDP), mapping(hostAddr6, 8082, 80, portmap.UDP)}, "fd00:30::2")

	before := s.count()
	tb.spoofUDP(tb.client, "eth0", "up0", net.ParseIP(hostAddr6), 8082)
	if !waitFor(func() bool { return s.count() > before }) {
		t.Fatalf("a spoofed packet to [%s]:8082 did not arrive: the test does not show what it claims", hostAddr6)
	}
	before = s.count()
	tb.spoofUDP(tb.client, "eth0", "up0", net.ParseIP("::1"), 8081)
	time.Sleep(blockedWait)
	if s.count() != before {
		t.Fatalf("a packet from the client host to [::1]:8081 reached the container: %v", s.peers)
	}
}
