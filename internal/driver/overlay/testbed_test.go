package overlay

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// The testbed is two "hosts" on different underlay subnets joined by a router, and an
// "intruder" on a third, each a throwaway network namespace; every container sandbox is a
// namespace too. Nothing touches the machine's own namespace, and everything goes with the
// namespaces when the test ends.
//
//	hostA 192.168.1.11 ---- .1 router 172.31.1.1 ---- 172.31.1.12 hostB
//	                           10.77.0.1
//	                               |
//	                        intruder 10.77.0.2

type testbed struct {
	t        *testing.T
	dir      string
	router   string
	intruder string
}

// host is one cluster member: its namespace and the driver the daemon would run there.
type host struct {
	t    *testing.T
	path string
	vtep netip.Addr
	d    *Driver
}

func newTestbed(t *testing.T) *testbed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, VXLAN and nftables)")
	}
	for _, tool := range []string{"nsenter", "busybox", "bridge", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	tb := &testbed{t: t, dir: t.TempDir()}
	tb.router = tb.ns("router")
	tb.sysctl(tb.router, "net/ipv4/ip_forward", "1")
	tb.intruder = tb.ns("intruder")
	tb.wire(tb.router, "rx", "10.77.0.1/24", tb.intruder, "10.77.0.2/24")
	tb.run(tb.intruder, "ip", "route", "add", "default", "via", "10.77.0.1")
	// The kernel must have VXLAN; say so rather than fail obscurely later.
	if out, err := run(tb.intruder, "ip", "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport", "4789"); err != nil {
		t.Skipf("this kernel cannot make VXLAN links: %v %s", err, out)
	}
	tb.run(tb.intruder, "ip", "link", "del", "vxprobe")
	return tb
}

// ns creates a namespace that is removed when the test ends, with lo up.
func (tb *testbed) ns(name string) string {
	tb.t.Helper()
	path := filepath.Join(tb.dir, name)
	if err := sandbox.Create(path); err != nil {
		tb.t.Fatal(err)
	}
	tb.t.Cleanup(func() {
		if err := sandbox.Delete(path); err != nil {
			tb.t.Errorf("removing namespace %s: %v", name, err)
		}
	})
	tb.run(path, "ip", "link", "set", "lo", "up")
	return path
}

// wire joins router link rname (address raddr) to eth0 (address addr) of namespace ns.
func (tb *testbed) wire(router, rname, raddr, ns, addr string) {
	tb.t.Helper()
	h, err := sandbox.Handle(router)
	if err != nil {
		tb.t.Fatal(err)
	}
	defer h.Close()
	fd, err := sandbox.Open(ns)
	if err != nil {
		tb.t.Fatal(err)
	}
	defer fd.Close()
	la := netlink.NewLinkAttrs()
	la.Name = rname
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(fd))}); err != nil {
		tb.t.Fatalf("creating underlay veth %s: %v", rname, err)
	}
	tb.run(router, "ip", "addr", "add", raddr, "dev", rname)
	tb.run(router, "ip", "link", "set", rname, "up")
	tb.run(ns, "ip", "addr", "add", addr, "dev", "eth0")
	tb.run(ns, "ip", "link", "set", "eth0", "up")
}

// host makes a cluster member at vtep/24 whose router is the subnet's .1.
func (tb *testbed) host(name, rname, cidr string) *host {
	tb.t.Helper()
	p := netip.MustParsePrefix(cidr)
	gw := p.Masked().Addr().Next()
	path := tb.ns(name)
	tb.wire(tb.router, rname, netip.PrefixFrom(gw, p.Bits()).String(), path, cidr)
	tb.run(path, "ip", "route", "add", "default", "via", gw.String())
	return &host{t: tb.t, path: path, vtep: p.Addr(), d: New(Config{VTEP: p.Addr()})}
}

// in runs fn in the host's namespace, as the daemon runs there.
func (h *host) in(fn func(d *Driver) error) error {
	return sandbox.EnterPath(h.path, func() error { return fn(h.d) })
}

// must runs fn in the host and fails the test on error.
func (h *host) must(what string, fn func(d *Driver) error) {
	h.t.Helper()
	if err := h.in(fn); err != nil {
		h.t.Fatalf("%s on %s: %v", what, filepath.Base(h.path), err)
	}
}

func (h *host) sh(args ...string) string {
	h.t.Helper()
	out, err := run(h.path, args...)
	if err != nil {
		h.t.Fatalf("%v on %s: %v %s", args, filepath.Base(h.path), err, out)
	}
	return out
}

// links lists the host's ov-/vx- links and what else it has besides lo and eth0.
func (h *host) links() []string {
	h.t.Helper()
	var out []string
	for _, l := range strings.Fields(h.sh("ip", "-o", "-br", "link", "show")) {
		if strings.HasPrefix(l, "ov-") || strings.HasPrefix(l, "vx-") || strings.HasPrefix(l, "veth") || strings.HasPrefix(l, "rt") {
			out = append(out, strings.SplitN(l, "@", 2)[0])
		}
	}
	slices.Sort(out)
	return out
}

// stats are a link's counters, read in the host's namespace.
func (h *host) stats(name string) *netlink.LinkStatistics {
	h.t.Helper()
	nh, err := sandbox.Handle(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(name)
	if err != nil {
		h.t.Fatalf("%s on %s: %v", name, filepath.Base(h.path), err)
	}
	return l.Attrs().Statistics
}

// allowlist reads the host's allowlist: its set's keys and the drop rule's packet count.
func (h *host) allowlist() (keys []string, drops uint64) {
	h.t.Helper()
	h.must("reading the allowlist", func(*Driver) error {
		o := allowLayout()
		c, err := nftables.New()
		if err != nil {
			return err
		}
		els, err := c.GetSetElements(o.set)
		if err != nil {
			return err
		}
		for _, e := range els {
			a, _ := netip.AddrFromSlice(e.Key[:4])
			vni, _ := keyVNI(e.Key)
			keys = append(keys, fmt.Sprintf("%s.%d", a, vni))
		}
		rules, err := c.GetRules(o.table, o.chain)
		if err != nil {
			return err
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					drops += ctr.Packets
				}
			}
		}
		return nil
	})
	return keys, drops
}

// sandbox makes a container namespace and its endpoint on the network.
func (tb *testbed) sandbox(name, addr string) driver.Endpoint {
	tb.t.Helper()
	path := tb.ns(name)
	a := netip.MustParsePrefix(addr)
	b := a.Addr().As4()
	return driver.Endpoint{ID: strings.Repeat(name, 64/len(name)+1)[:64], HostIfName: "veth" + name, IfName: "eth0",
		Address: a, MAC: net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}, SandboxPath: path}
}

func join(h *host, n driver.Network, ep driver.Endpoint) {
	h.t.Helper()
	h.must("Join", func(d *Driver) error {
		ns, err := sandbox.Open(ep.SandboxPath)
		if err != nil {
			return err
		}
		defer ns.Close()
		return d.Join(n, ep, ns)
	})
}

func peerOf(h *host, ep driver.Endpoint) driver.Peer {
	return driver.Peer{EndpointID: ep.ID, Address: ep.Address.Addr(), MAC: ep.MAC, VTEP: h.vtep, Host: filepath.Base(h.path)}
}

func (tb *testbed) run(ns string, args ...string) string {
	tb.t.Helper()
	out, err := run(ns, args...)
	if err != nil {
		tb.t.Fatalf("%v in %s: %v %s", args, filepath.Base(ns), err, out)
	}
	return out
}

// run runs a command in namespace ns (network namespace only).
func run(ns string, args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--net=" + ns}, args...)...).CombinedOutput()
	return string(out), err
}

// ping reports whether one ICMP echo from sandbox ns to ip is answered.
func ping(ns string, ip netip.Addr) bool {
	_, err := run(ns, "busybox", "ping", "-c", "1", "-W", "2", ip.String())
	return err == nil
}

// sendVXLAN sends, from namespace ns, one VXLAN datagram for vni to dst:4789 carrying a
// broadcast Ethernet frame.
func sendVXLAN(t *testing.T, ns string, dst netip.Addr, vni uint32) {
	t.Helper()
	pkt := make([]byte, 8, 8+60)
	pkt[0] = 0x08 // I flag: the VNI is valid
	binary.BigEndian.PutUint32(pkt[4:], vni<<8)
	frame := make([]byte, 60)
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x99, 0, 0, 0, 1, 0x88, 0xb5}) // local experimental ethertype
	pkt = append(pkt, frame...)
	err := sandbox.EnterPath(ns, func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, VXLANPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(pkt)
		return err
	})
	if err != nil {
		t.Fatalf("sending a VXLAN datagram: %v", err)
	}
}

func (tb *testbed) sysctl(ns, key, val string) {
	tb.t.Helper()
	if err := sandbox.EnterPath(ns, func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(val+"\n"), 0o644)
	}); err != nil {
		tb.t.Fatalf("sysctl %s=%s: %v", key, val, err)
	}
}
