package firewall

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/sandbox"
)

// The testbed is a throwaway "host" namespace with cnet's bridges, containers (namespaces
// with a veth on a bridge) and a "client" namespace joined to the host by an underlay veth,
// dual-stack:
//
//	client 10.99.0.2/24 eth0 ---- up0 10.99.0.1/24  host  br-* 172.x.0.1 ---- eth0 container
//	       fd00:99::2/64              fd00:99::1/64          fd00:x::1              fd00:x::N
//
// Nothing touches the machine's own namespace; everything is removed when the test ends.
// IPv6 addresses are added with nodad, so that they are usable at once (duplicate address
// detection would keep them tentative for a second or more).

const (
	hostAddr    = "10.99.0.1"
	clientAddr  = "10.99.0.2"
	hostAddr6   = "fd00:99::1"
	clientAddr6 = "fd00:99::2"
)

type testbed struct {
	t      testing.TB
	dir    string
	host   string // namespace paths
	client string
	fw     *Firewall
	nets   map[string]Network
}

func needRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces and nftables)")
	}
}

// newTestbed makes the host and client namespaces and a Firewall for the host, with its base
// ruleset in place. The host forwards IPv4 and IPv6 and, like a host without br_netfilter,
// does not send bridged traffic through iptables or ip6tables hooks unless a bridge asks for
// it.
func newTestbed(t testing.TB) *testbed {
	needRoot(t)
	tb := &testbed{t: t, dir: t.TempDir(), nets: map[string]Network{}}
	tb.host = tb.ns("host")
	tb.client = tb.ns("client")
	tb.sysctl(tb.host, "net/ipv4/ip_forward", "1")
	tb.sysctl(tb.host, "net/ipv6/conf/all/forwarding", "1")
	tb.sysctl(tb.host, "net/bridge/bridge-nf-call-iptables", "0")
	tb.sysctl(tb.host, "net/bridge/bridge-nf-call-ip6tables", "0")

	hh := tb.handle(tb.host)
	cfd := tb.nsFd(tb.client)
	up := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(cfd)}
	if err := hh.LinkAdd(up); err != nil {
		t.Fatalf("creating the underlay veth: %v", err)
	}
	tb.addrUp(tb.host, "up0", hostAddr+"/24", hostAddr6+"/64")
	tb.addrUp(tb.client, "eth0", clientAddr+"/24", clientAddr6+"/64")

	fd := tb.nsFd(tb.host)
	fw, err := New(fd)
	if err != nil {
		t.Fatal(err)
	}
	tb.fw = fw
	t.Cleanup(func() { fw.Close() })
	if err := fw.EnsureBase(); err != nil {
		t.Fatalf("EnsureBase: %v", err)
	}
	return tb
}

// ns creates a namespace that is deleted when the test ends; its links go with it. Links
// created in it later have IPv6 (sandbox.Create turns it off by default, as cnet does for a
// container without IPv6).
func (tb *testbed) ns(name string) string {
	path := filepath.Join(tb.dir, name)
	if err := sandbox.Create(path); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() {
		if err := sandbox.Delete(path); err != nil {
			tb.t.Errorf("removing namespace %s: %v", name, err)
		}
	})
	tb.sysctl(path, "net/ipv6/conf/default/disable_ipv6", "0")
	return path
}

func (tb *testbed) nsFd(path string) int {
	h, err := sandbox.Open(path)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() { h.Close() })
	return int(h)
}

func (tb *testbed) handle(path string) *netlink.Handle {
	h, err := sandbox.Handle(path)
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(h.Close)
	return h
}

func (tb *testbed) sysctl(ns, key, val string) {
	tb.t.Helper()
	err := inNamespace(ns, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(val+"\n"), 0o644)
	})
	if err != nil {
		tb.t.Fatalf("sysctl %s=%s: %v", key, val, err)
	}
}

// addrUp gives link in ns the addresses cidrs (IPv6 ones without duplicate address
// detection) and brings it up.
func (tb *testbed) addrUp(ns, link string, cidrs ...string) {
	tb.t.Helper()
	h := tb.handle(ns)
	l, err := h.LinkByName(link)
	if err != nil {
		tb.t.Fatal(err)
	}
	for _, cidr := range cidrs {
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			tb.t.Fatal(err)
		}
		if a.IP.To4() == nil {
			a.Flags |= unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			tb.t.Fatalf("adding %s to %s: %v", cidr, link, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		tb.t.Fatal(err)
	}
}

// network creates bridge br in the host, with the first address of each subnet as gateway,
// and adds it to the firewall.
func (tb *testbed) network(n Network) {
	tb.t.Helper()
	h := tb.handle(tb.host)
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge}}); err != nil {
		tb.t.Fatalf("creating bridge %s: %v", n.Bridge, err)
	}
	var gws []string
	for _, p := range n.Subnets {
		gws = append(gws, netip.PrefixFrom(p.Addr().Next(), p.Bits()).String())
	}
	tb.addrUp(tb.host, n.Bridge, gws...)
	if err := tb.fw.AddNetwork(n); err != nil {
		tb.t.Fatalf("AddNetwork(%+v): %v", n, err)
	}
	tb.nets[n.Bridge] = n
}

// container makes a namespace with eth0 at ips (IPv4, IPv6 or both) on bridge br and, for each
// address's family, a default route via the gateway of its subnet, and returns its path.
func (tb *testbed) container(name, br string, ips ...string) string {
	tb.t.Helper()
	path := tb.ns(name)
	n := tb.nets[br]
	h := tb.handle(tb.host)
	bl, err := h.LinkByName(br)
	if err != nil {
		tb.t.Fatal(err)
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v" + name, MasterIndex: bl.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(tb.nsFd(path))}
	if err := h.LinkAdd(v); err != nil {
		tb.t.Fatalf("creating veth of %s: %v", name, err)
	}
	tb.addrUp(tb.host, "v"+name)
	var subnets []netip.Prefix
	for _, ip := range ips {
		a := addr(ip)
		i := slices.IndexFunc(n.Subnets, func(p netip.Prefix) bool { return p.Contains(a) })
		if i < 0 {
			tb.t.Fatalf("%s is in no subnet of %s", ip, br)
		}
		subnets = append(subnets, n.Subnets[i])
		tb.addrUp(path, "eth0", netip.PrefixFrom(a, n.Subnets[i].Bits()).String())
	}
	ch := tb.handle(path)
	for _, p := range subnets {
		if err := ch.RouteAdd(&netlink.Route{Gw: p.Addr().Next().AsSlice()}); err != nil {
			tb.t.Fatalf("default route of %s via %s: %v", name, p.Addr().Next(), err)
		}
	}
	return path
}

// route adds a route in ns to dst via gw.
func (tb *testbed) route(ns, dst, gw string) {
	tb.t.Helper()
	_, ipn, err := net.ParseCIDR(dst)
	if err != nil {
		tb.t.Fatal(err)
	}
	if err := tb.handle(ns).RouteAdd(&netlink.Route{Dst: ipn, Gw: net.ParseIP(gw)}); err != nil {
		tb.t.Fatalf("route %s via %s: %v", dst, gw, err)
	}
}

// run runs a command in namespace ns (network namespace only) and returns its output.
func run(ns string, args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns}, args...)...).CombinedOutput()
	return string(out), err
}

// ping reports whether one ICMP echo (ICMPv6 for an IPv6 address) from ns to ip is answered.
func ping(ns, ip string) bool {
	args := []string{"busybox", "ping", "-c", "1", "-W", "2", ip}
	if strings.Contains(ip, ":") {
		args = slices.Insert(args, 2, "-6")
	}
	_, err := run(ns, args...)
	return err == nil
}

// inNamespace runs fn on a locked thread inside the namespace at path. A socket created there
// stays in that namespace when used from any goroutine afterwards.
func inNamespace(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			errc <- errors.Join(ferr, err)
			return // thread stays locked and is discarded
		}
		origin.Close()
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// server is a TCP and UDP echo of the peer: whoever connects or sends a datagram gets back the
// address it came from, as this namespace saw it. It counts what arrived.
type server struct {
	mu    sync.Mutex
	peers []string
}

func (s *server) saw(p string) {
	s.mu.Lock()
	s.peers = append(s.peers, p)
	s.mu.Unlock()
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}

// serve listens on port (TCP and UDP, all IPv4 and IPv6 addresses, with a socket for each
// family) in namespace ns until the test ends.
func (tb *testbed) serve(ns string, port int) *server {
	tb.t.Helper()
	s := &server{}
	var ls []net.Listener
	var pcs []net.PacketConn
	err := inNamespace(ns, func() error {
		for _, v := range []string{"4", "6"} {
			l, err := net.Listen("tcp"+v, fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			ls = append(ls, l)
			pc, err := net.ListenPacket("udp"+v, fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			pcs = append(pcs, pc)
		}
		return nil
	})
	tb.t.Cleanup(func() {
		for _, l := range ls {
			l.Close()
		}
		for _, pc := range pcs {
			pc.Close()
		}
	})
	if err != nil {
		tb.t.Fatalf("listening on %d: %v", port, err)
	}
	for _, l := range ls {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				s.saw(c.RemoteAddr().String())
				fmt.Fprintf(c, "%s\n", c.RemoteAddr().(*net.TCPAddr).IP)
				c.Close()
			}
		}()
	}
	for _, pc := range pcs {
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				s.saw(from.String())
				pc.WriteTo([]byte(from.(*net.UDPAddr).IP.String()+"\n"), from)
			}
		}()
	}
	return s
}

// Timeouts: an answer is waited for generously (the machine may be busy); a blocked path is
// concluded after blockedWait without an answer, which is long for a local veth round trip.
const (
	answerWait  = 20 * time.Second
	blockedWait = 2 * time.Second
)

// dial connects from ns to addr over network ("tcp4", "udp4", "tcp6" or "udp6"; an IPv6
// addr is [ip]:port) and returns the peer address the server reported.
func dial(ns, network, addr string, wait time.Duration) (string, error) {
	var c net.Conn
	err := inNamespace(ns, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, wait)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if strings.HasPrefix(network, "udp") {
		if _, err := c.Write([]byte("hello\n")); err != nil {
			return "", err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// reach asserts that ns reaches addr and that the server saw the connection come from wantPeer
// (if not empty).
func (tb *testbed) reach(ns, network, addr, wantPeer string) {
	tb.t.Helper()
	peer, err := dial(ns, network, addr, answerWait)
	if err != nil {
		tb.t.Errorf("%s %s from %s: %v, want an answer", network, addr, filepath.Base(ns), err)
		return
	}
	if wantPeer != "" && peer != wantPeer {
		tb.t.Errorf("%s %s from %s: the server saw %s, want %s", network, addr, filepath.Base(ns), peer, wantPeer)
	}
}

// blocked asserts that ns does not reach addr: no answer, and the server s (if given) saw nothing.
func (tb *testbed) blocked(ns, network, addr string, s *server) {
	tb.t.Helper()
	before := 0
	if s != nil {
		before = s.count()
	}
	if peer, err := dial(ns, network, addr, blockedWait); err == nil {
		tb.t.Errorf("%s %s from %s answered (server saw %s), want it blocked", network, addr, filepath.Base(ns), peer)
	}
	if s != nil && s.count() != before {
		tb.t.Errorf("%s %s from %s reached the server, want it blocked", network, addr, filepath.Base(ns))
	}
}

// nft lists the host's ruleset with the nft command, for failure messages.
func (tb *testbed) nft(args ...string) string {
	out, err := run(tb.host, append([]string{"nft"}, args...)...)
	if err != nil {
		return fmt.Sprintf("nft %v: %v: %s", args, err, out)
	}
	return out
}
