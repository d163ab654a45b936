package firewall

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/portmap"
)

// Addresses of the testbed's networks (all inside the test's own namespaces).
var (
	netA = Network{Bridge: "br-a", Subnets: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}, Masquerade: true, ICC: true}
	netB = Network{Bridge: "br-b", Subnets: []netip.Prefix{netip.MustParsePrefix("172.31.0.0/16")}, Masquerade: true, ICC: true}
)

func specs(t *testing.T, ss ...string) []portmap.Mapping {
	t.Helper()
	var out []portmap.Mapping
	for _, s := range ss {
		ms, err := portmap.ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ms...)
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// TestPublishedPorts: a TCP and a UDP port published on all addresses reach the container from
// another host (which keeps its own source address), from the host through its own address,
// its gateway address and 127.0.0.1, and from a container of the same network through the
// host's address (hairpin, masqueraded to the gateway). The container's unpublished port is
// not reachable by routing to its address.
func TestPublishedPorts(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	a2 := tb.container("a2", "br-a", "172.30.0.3")
	tb.route(tb.client, "172.30.0.0/16", hostAddr)
	web := tb.serve(a1, 80)
	tb.serve(a1, 81)
	if err := tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "8080:80", "5353:80/udp")); err != nil {
		t.Fatal(err)
	}

	tb.reach(tb.client, "tcp4", hostAddr+":8080", clientAddr)
	tb.reach(tb.client, "udp4", hostAddr+":5353", clientAddr)
	tb.reach(tb.host, "tcp4", hostAddr+":8080", hostAddr)
	tb.reach(tb.host, "tcp4", "172.30.0.1:8080", "172.30.0.1")
	tb.reach(tb.host, "tcp4", "127.0.0.1:8080", "172.30.0.1")
	tb.reach(tb.host, "udp4", "127.0.0.1:5353", "172.30.0.1")
	// Hairpin: to itself and to a neighbour, through the host's address.
	tb.reach(a1, "tcp4", hostAddr+":8080", "172.30.0.1")
	tb.reach(a2, "tcp4", hostAddr+":8080", "172.30.0.1")
	tb.reach(a2, "udp4", hostAddr+":5353", "172.30.0.1")
	// Only published ports: routing straight to the container's address is dropped.
	tb.blocked(tb.client, "tcp4", "172.30.0.2:81", nil)
	tb.blocked(tb.client, "tcp4", "172.30.0.2:80", web)
	if t.Failed() {
		t.Log(tb.nft("list", "ruleset"))
	}
}

// TestPublishedRange publishes a 100-port range (host 20000-20099 to 30000-30099) and reaches
// its first and last port.
func TestPublishedRange(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	tb.serve(a1, 30000)
	tb.serve(a1, 30099)
	if err := tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "20000-20099:30000-30099")); err != nil {
		t.Fatal(err)
	}
	tb.reach(tb.client, "tcp4", hostAddr+":20000", clientAddr)
	tb.reach(tb.client, "tcp4", hostAddr+":20099", clientAddr)
	tb.reach(tb.host, "tcp4", "127.0.0.1:20099", "172.30.0.1")
}

// TestLoopbackOnly: a port published on 127.0.0.1 serves the host's 127.0.0.1 and nothing else:
// not the host's other addresses, not the client host, and not a packet the client host
// addresses to 127.0.0.1 and sends to the host's MAC (moby#41872). The last is shown to be a
// real path by removing the guard rule, and to be closed again when EnsureBase restores it.
func TestLoopbackOnly(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	s := tb.serve(a1, 80)
	if err := tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "127.0.0.1:8081:80", "127.0.0.1:8081:80/udp")); err != nil {
		t.Fatal(err)
	}
	tb.reach(tb.host, "tcp4", "127.0.0.1:8081", "172.30.0.1")
	tb.reach(tb.host, "udp4", "127.0.0.1:8081", "172.30.0.1")
	tb.blocked(tb.host, "tcp4", hostAddr+":8081", s)
	tb.blocked(tb.client, "tcp4", hostAddr+":8081", s)
	tb.blocked(tb.client, "udp4", hostAddr+":8081", s)

	spoof := func() { tb.spoofUDP(tb.client, "eth0", "up0", net.ParseIP("127.0.0.1"), 8081) }
	before := s.count()
	spoof()
	time.Sleep(blockedWait)
	if s.count() != before {
		t.Fatalf("a packet from the client host to 127.0.0.1:8081 reached the container: %v", s.peers)
	}

	// Without the guard the packet is DNATed and forwarded: the attack is real.
	tb.withoutChain(tableIP, "guard", func() {
		spoof()
		if !waitFor(func() bool { return s.count() > before }) {
			t.Fatalf("without the guard rule the spoofed packet did not arrive: the test does not show what it claims")
		}
	})
	before = s.count()
	spoof()
	time.Sleep(blockedWait)
	if s.count() != before {
		t.Fatalf("after EnsureBase a spoofed packet to 127.0.0.1 reached the container again")
	}
}

// withoutChain empties one of cnet's chains (of the table tableIP or tableIP6), runs fn, and
// has EnsureBase restore the chain: it shows that what a test found blocked was blocked by that
// chain, not by something else.
func (tb *testbed) withoutChain(table int, chain string, fn func()) {
	tb.t.Helper()
	fam := families[table].name
	if out, err := run(tb.host, "nft", "flush", "chain", fam, TableName, chain); err != nil {
		tb.t.Fatalf("flushing chain %s of %s: %v %s", chain, fam, err, out)
	}
	fn()
	if err := tb.fw.EnsureBase(); err != nil {
		tb.t.Fatal(err)
	}
	if n := strings.Count(tb.nft("list", "chain", fam, TableName, chain), "comment \""+version); n != len(tb.fw.layouts[table].rules[chain]) {
		tb.t.Fatalf("EnsureBase restored %d rules of chain %s of %s, want %d", n, chain, fam, len(tb.fw.layouts[table].rules[chain]))
	}
}

func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(answerWait)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// spoofUDP sends, from namespace ns out of its link dev, a UDP datagram from the client's
// address (of dst's family) to dst:port at the Ethernet address of peer (a link of the host
// namespace), as a hostile neighbour can.
func (tb *testbed) spoofUDP(ns, dev, peer string, dst net.IP, port uint16) {
	tb.t.Helper()
	pl, err := tb.handle(tb.host).LinkByName(peer)
	if err != nil {
		tb.t.Fatal(err)
	}
	dl, err := tb.handle(ns).LinkByName(dev)
	if err != nil {
		tb.t.Fatal(err)
	}
	udp := make([]byte, 8+5)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], "spoof")
	var pkt []byte
	var ethType uint16
	if dst4 := dst.To4(); dst4 != nil {
		ethType = unix.ETH_P_IP
		pkt = make([]byte, 20, 20+len(udp))
		pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(pkt[2:], uint16(20+len(udp)))
		copy(pkt[12:16], net.ParseIP(clientAddr).To4())
		copy(pkt[16:20], dst4)
		binary.BigEndian.PutUint16(pkt[10:], checksum(sum16(pkt)))
		pkt = append(pkt, udp...) // UDP checksum 0: none, valid for IPv4
	} else {
		ethType = unix.ETH_P_IPV6
		pkt = make([]byte, 40, 40+len(udp))
		pkt[0], pkt[6], pkt[7] = 0x60, unix.IPPROTO_UDP, 64
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(udp)))
		copy(pkt[8:24], net.ParseIP(clientAddr6))
		copy(pkt[24:40], dst.To16())
		// IPv6 requires the UDP checksum, over a pseudo-header of the addresses, length and
		// protocol, and the datagram.
		pseudo := append(append([]byte{}, pkt[8:40]...), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, unix.IPPROTO_UDP)
		c := checksum(sum16(pseudo) + sum16(udp))
		if c == 0 {
			c = 0xffff // 0 would mean none, which IPv6 does not allow
		}
		binary.BigEndian.PutUint16(udp[6:], c)
		pkt = append(pkt, udp...)
	}
	proto := binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, ethType)) // htons
	err = inNamespace(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(proto))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Ifindex: dl.Attrs().Index, Protocol: proto, Halen: 6}
		copy(sa.Addr[:], pl.Attrs().HardwareAddr)
		return unix.Sendto(fd, pkt, 0, sa)
	})
	if err != nil {
		tb.t.Fatalf("sending a spoofed packet: %v", err)
	}
}

// sum16 adds b up as 16-bit big-endian words, for the Internet checksum (RFC 1071).
func sum16(b []byte) uint32 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

// checksum folds a sum16 into the one's complement checksum.
func checksum(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestMasquerade: a container of a masqueraded network reaches the client host with the host's
// address as source; one of a network without masquerade keeps its own (the client host routes
// it back through the host).
func TestMasquerade(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	noMasq := netB
	noMasq.Masquerade = false
	tb.network(noMasq)
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	b1 := tb.container("b1", "br-b", "172.31.0.2")
	tb.route(tb.client, "172.31.0.0/16", hostAddr)
	tb.serve(tb.client, 9000)
	tb.reach(a1, "tcp4", clientAddr+":9000", hostAddr)
	tb.reach(a1, "udp4", clientAddr+":9000", hostAddr)
	tb.reach(b1, "tcp4", clientAddr+":9000", "172.31.0.2")
	if !ping(a1, clientAddr) {
		t.Errorf("ping from a masqueraded container to the client host failed")
	}
	if t.Failed() {
		t.Log(tb.nft("list", "ruleset"))
	}
}

// TestIsolation: containers of two networks cannot reach each other in either direction, by
// TCP, UDP or ICMP, while each reaches its own network's containers and the client host.
func TestIsolation(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	tb.network(netB)
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	a2 := tb.container("a2", "br-a", "172.30.0.3")
	b1 := tb.container("b1", "br-b", "172.31.0.2")
	sa, sb := tb.serve(a1, 80), tb.serve(b1, 80)
	tb.serve(tb.client, 9000)

	for _, proto := range []string{"tcp4", "udp4"} {
		tb.blocked(a1, proto, "172.31.0.2:80", sb)
		tb.blocked(b1, proto, "172.30.0.2:80", sa)
		tb.reach(a2, proto, "172.30.0.2:80", "172.30.0.3")
		tb.reach(b1, proto, clientAddr+":9000", hostAddr)
	}
	if ping(a1, "172.31.0.2") || ping(b1, "172.30.0.2") {
		t.Errorf("ICMP crosses between networks")
	}
	tb.withoutChain(tableIP, "forward", func() {
		tb.reach(a1, "tcp4", "172.31.0.2:80", "172.30.0.2")
		tb.reach(b1, "udp4", "172.30.0.2:80", "172.31.0.2")
	})
	if !ping(a2, "172.30.0.2") {
		t.Errorf("ICMP within a network fails")
	}
}

// TestInternal: a container of an --internal network reaches neither the client host nor the
// other network, and the client host cannot route to it; containers of the network still
// reach each other.
func TestInternal(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	internal := Network{Bridge: "br-i", Subnets: []netip.Prefix{netip.MustParsePrefix("172.29.0.0/16")}, Masquerade: true, ICC: true, Internal: true}
	tb.network(internal)
	tb.network(netA)
	i1 := tb.container("i1", "br-i", "172.29.0.2")
	i2 := tb.container("i2", "br-i", "172.29.0.3")
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	tb.route(tb.client, "172.29.0.0/16", hostAddr)
	sc, si := tb.serve(tb.client, 9000), tb.serve(i1, 80)
	tb.serve(a1, 80)

	tb.blocked(i1, "tcp4", clientAddr+":9000", sc)
	tb.blocked(i1, "udp4", clientAddr+":9000", sc)
	if ping(i1, clientAddr) {
		t.Errorf("an internal container pings the client host")
	}
	tb.blocked(tb.client, "tcp4", "172.29.0.2:80", si)
	tb.blocked(i1, "tcp4", "172.30.0.2:80", nil)
	tb.blocked(a1, "tcp4", "172.29.0.2:80", si)
	tb.reach(i2, "tcp4", "172.29.0.2:80", "172.29.0.3")
	if st, _ := tb.fw.Current(); len(st.Networks) != 2 || !st.Networks[1].Internal || st.Networks[1].Masquerade {
		t.Errorf("Current() = %+v, want br-i internal without masquerade", st.Networks)
	}
	tb.withoutChain(tableIP, "forward", func() { tb.reach(i1, "tcp4", clientAddr+":9000", "172.29.0.2") })
}

// TestICCDisabled: on a network with enable_icc=false containers cannot reach each other (TCP,
// UDP, ICMP) although ARP between them works; they still reach the client host and each
// other's published ports through the host's address, and a network with icc on is
// unaffected. The host sends no bridged traffic through iptables hooks except for the bridge
// AddNetwork asked to.
func TestICCDisabled(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	noICC := Network{Bridge: "br-n", Subnets: []netip.Prefix{netip.MustParsePrefix("172.28.0.0/16")}, Masquerade: true, ICC: false}
	tb.network(noICC)
	tb.network(netA)
	n1 := tb.container("n1", "br-n", "172.28.0.2")
	n2 := tb.container("n2", "br-n", "172.28.0.3")
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	a2 := tb.container("a2", "br-a", "172.30.0.3")
	sn := tb.serve(n2, 80)
	tb.serve(a2, 80)
	tb.serve(tb.client, 9000)

	tb.blocked(n1, "tcp4", "172.28.0.3:80", sn)
	tb.blocked(n1, "udp4", "172.28.0.3:80", sn)
	if ping(n1, "172.28.0.3") {
		t.Errorf("ICMP between containers of an icc=false network")
	}
	if out, err := run(n1, "busybox", "arping", "-c", "1", "-w", "5", "-I", "eth0", "172.28.0.3"); err != nil {
		t.Errorf("ARP between containers of an icc=false network fails: %v\n%s", err, out)
	}
	tb.reach(n1, "tcp4", clientAddr+":9000", hostAddr)
	// A published port of n2 is reachable from n1 through the host's address, as from anywhere.
	must(t, tb.fw.AddPorts("br-n", addr("172.28.0.3"), specs(t, "8080:80")))
	tb.reach(n1, "tcp4", hostAddr+":8080", "172.28.0.1")
	tb.withoutChain(tableIP, "forward", func() { tb.reach(n1, "tcp4", "172.28.0.3:80", "172.28.0.2") })
	tb.reach(a1, "tcp4", "172.30.0.3:80", "172.30.0.2")
	if !ping(a1, "172.30.0.3") {
		t.Errorf("ICMP within an icc=true network fails")
	}
	if out, _ := run(tb.host, "ip", "-d", "link", "show", "br-a"); !strings.Contains(out, "nf_call_iptables 0") {
		t.Errorf("the icc=true bridge had nf_call_iptables turned on:\n%s", out)
	}
}

// TestUDPRepublish: when a UDP port is unpublished and published to another container, a
// client that keeps sending from the same socket reaches the new container, over IPv4 and over
// IPv6. Conntrack would otherwise keep sending that flow to the old one, as the control (the
// element swapped with the nft command, which leaves conntrack alone) shows.
func TestUDPRepublish(t *testing.T) {
	t.Parallel()
	for _, fam := range []struct {
		name, udp, host string // test name, network, host address to dial
		net             Network
		c1, c2          string // container addresses
		table           int
	}{
		{"IPv4", "udp4", hostAddr, netA, "172.30.0.2", "172.30.0.3", tableIP},
		{"IPv6", "udp6", "[" + hostAddr6 + "]", netAD, "fd00:30::2", "fd00:30::3", tableIP6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			tb := newTestbed(t)
			tb.network(fam.net)
			a1 := tb.container("a1", "br-a", fam.c1)
			a2 := tb.container("a2", "br-a", fam.c2)
			s1, s2 := tb.serve(a1, 53), tb.serve(a2, 53)
			socket := func(port string) func() {
				var c net.Conn
				must(t, inNamespace(tb.client, func() (err error) {
					c, err = net.Dial(fam.udp, fam.host+":"+port)
					return err
				}))
				t.Cleanup(func() { c.Close() })
				return func() {
					if _, err := c.Write([]byte("x")); err != nil {
						t.Fatal(err)
					}
				}
			}
			arrives := func(s *server, n int, what string) {
				t.Helper()
				if !waitFor(func() bool { return s.count() >= n }) {
					t.Fatalf("%s: the datagram did not arrive", what)
				}
			}

			// Control: swap the element behind cnet's back; the flow stays with a1.
			must(t, tb.fw.AddPorts("br-a", addr(fam.c1), specs(t, "6000:53/udp")))
			send := socket("6000")
			send()
			arrives(s1, 1, "control, first datagram")
			nftFam := families[fam.table].name
			for _, cmd := range [][]string{
				{"nft", "delete", "element", nftFam, TableName, mapPortsAny, "{ udp . 6000 }"},
				{"nft", "add", "element", nftFam, TableName, mapPortsAny, "{ udp . 6000 : " + fam.c2 + " . 53 }"},
			} {
				if out, err := run(tb.host, cmd...); err != nil {
					t.Fatalf("%v: %v %s", cmd, err, out)
				}
			}
			send()
			arrives(s1, 2, "control, after the swap")
			if s2.count() != 0 {
				t.Fatalf("control: the flow moved to a2 without conntrack being cleared; the test shows nothing")
			}

			// With RemovePorts and AddPorts the same flow goes to a2.
			must(t, tb.fw.AddPorts("br-a", addr(fam.c1), specs(t, "5353:53/udp")))
			send = socket("5353")
			send()
			arrives(s1, 3, "first datagram")
			must(t, tb.fw.RemovePorts("br-a", addr(fam.c1), specs(t, "5353:53/udp")))
			must(t, tb.fw.AddPorts("br-a", addr(fam.c2), specs(t, "5353:53/udp")))
			send()
			arrives(s2, 1, "after republishing to a2")
			if s1.count() != 3 {
				t.Fatalf("after republishing, a1 still got the flow: %v", s1.peers)
			}
		})
	}
}

// TestPublishedHTTP serves a page with busybox httpd in a container and fetches it with busybox
// nc through the published port, from the client host and from the host's 127.0.0.1.
func TestPublishedHTTP(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	a1 := tb.container("a1", "br-a", "172.30.0.2")
	www := t.TempDir()
	must(t, os.WriteFile(www+"/index.html", []byte("hello from a1\n"), 0o644))
	httpd := exec.Command("nsenter", "--net="+a1, "busybox", "httpd", "-f", "-p", "80", "-h", www)
	must(t, httpd.Start())
	t.Cleanup(func() { httpd.Process.Kill(); httpd.Wait() })
	must(t, tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "5000:80")))

	for _, from := range []struct{ ns, ip string }{{tb.client, hostAddr}, {tb.host, "127.0.0.1"}} {
		var out []byte
		ok := waitFor(func() bool { // httpd may take a moment to listen
			get := exec.Command("nsenter", "--net="+from.ns, "busybox", "nc", "-w", "5", from.ip, "5000")
			get.Stdin = strings.NewReader("GET /index.html HTTP/1.0\r\n\r\n")
			out, _ = get.CombinedOutput()
			return strings.HasPrefix(string(out), "HTTP/1.1 200")
		})
		if !ok || !strings.HasSuffix(string(out), "\r\n\r\nhello from a1\n") {
			t.Errorf("GET http://%s:5000/ from %s: %q", from.ip, filepath.Base(from.ns), out)
		}
	}
}
