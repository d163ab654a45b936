package macvlan

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// testHost returns a driver bound to a throwaway network namespace that stands for the
// daemon's host, with a veth pair p0/p1 (both up) whose p0 serves as a parent. The
// machine's own namespace is never touched.
func testHost(t *testing.T) *Driver {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces")
	}
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer origin.Close()
		ns, err := netns.New()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		if err := netns.Set(origin); err != nil {
			ch <- result{err: err} // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ns: ns}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("making a throwaway namespace: %v", r.err)
	}
	h, err := netlink.NewHandleAt(r.ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); r.ns.Close() })
	d := &Driver{nl: h}
	la := netlink.NewLinkAttrs()
	la.Name = "p0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "p1"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p0", "p1"} {
		l, err := h.LinkByName(name)
		if err == nil {
			err = h.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// testSandbox makes a sandbox namespace as the controller does.
func testSandbox(t *testing.T, name string) (string, netns.NsHandle) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := sandbox.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sandbox.Delete(path) })
	ns, err := sandbox.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return path, ns
}

func testEndpoint(path, addr string) driver.Endpoint {
	a := netip.MustParsePrefix(addr)
	b := a.Addr().As4()
	mac := net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
	return driver.Endpoint{ID: "ep-" + addr, IfName: "eth0", Address: a, MAC: mac, SandboxPath: path}
}

func links(t *testing.T, d *Driver) string {
	t.Helper()
	ls, err := d.nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Attrs().Name)
	}
	return strings.Join(names, " ")
}

// prepared runs what the controller runs before CreateNetwork.
func prepared(t *testing.T, d *Driver, opts map[string]string) driver.Network {
	t.Helper()
	n := driver.Network{ID: testID, Name: "m", Options: opts}
	if err := d.ValidateOptions(opts); err != nil {
		t.Fatal(err)
	}
	if err := d.PrepareNetwork(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJoinLeave(t *testing.T) {
	d := testHost(t)
	before := links(t, d)
	n := prepared(t, d, map[string]string{OptParent: "p0", OptMode: "private"})
	if n.Internal || n.State != nil {
		t.Fatalf("prepared %+v", n)
	}
	if err := d.CreateNetwork(n); err != nil {
		t.Fatal(err)
	}
	path, ns := testSandbox(t, "sb1")
	ep := testEndpoint(path, "192.168.57.2/24")
	if d.EndpointPresent(n, ep) {
		t.Fatal("present before Join")
	}
	if err := d.Join(n, ep, ns); err != nil {
		t.Fatal(err)
	}
	h, err := sandbox.Handle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	mv, ok := l.(*netlink.Macvlan)
	if !ok || mv.Mode != netlink.MACVLAN_MODE_PRIVATE || mv.HardwareAddr.String() != "02:42:c0:a8:39:02" || mv.Flags&net.FlagUp == 0 {
		t.Errorf("eth0 in the sandbox: %T %+v", l, l.Attrs())
	}
	addrs, _ := h.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IPNet.String() != "192.168.57.2/24" {
		t.Errorf("eth0 addresses %v", addrs)
	}
	if got := links(t, d); got != before {
		t.Errorf("the host's links changed from %q to %q: the macvlan must exist only in the sandbox", before, got)
	}
	if !d.EndpointPresent(n, ep) {
		t.Error("not present after Join")
	}
	other := ep
	other.MAC = net.HardwareAddr{0x02, 0x42, 1, 2, 3, 4}
	if d.EndpointPresent(n, other) {
		t.Error("present with another MAC")
	}
	// A second Join under the same name fails and leaves the first alone.
	if err := d.Join(n, ep, ns); err == nil {
		t.Error("a second eth0 was accepted")
	}
	if !d.EndpointPresent(n, ep) {
		t.Error("a failed Join removed the existing interface")
	}
	if err := d.Leave(n, ep); err != nil {
		t.Fatal(err)
	}
	if d.EndpointPresent(n, ep) {
		t.Error("present after Leave")
	}
	if err := d.Leave(n, ep); err != nil {
		t.Errorf("Leave of what is gone: %v", err)
	}
	gone := ep
	gone.SandboxPath = filepath.Join(t.TempDir(), "nothing")
	if err := d.Leave(n, gone); err != nil || d.EndpointPresent(n, gone) {
		t.Errorf("Leave with the sandbox gone: %v", err)
	}
	if err := d.DeleteNetwork(n); err != nil {
		t.Fatal(err)
	}
	if got := links(t, d); got != before {
		t.Errorf("DeleteNetwork touched the user's parent: links %q, want %q", got, before)
	}
}

func TestJoinMissingParent(t *testing.T) {
	d := testHost(t)
	n := prepared(t, d, map[string]string{OptParent: "p1"})
	path, ns := testSandbox(t, "sb1")
	l, _ := d.nl.LinkByName("p1")
	if err := d.nl.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	err := d.Join(n, testEndpoint(path, "10.0.0.2/24"), ns)
	if err == nil || !errdefs.Is(err, errdefs.KindNotFound) || !strings.Contains(err.Error(), "parent interface p1 of macvlan network m not found") {
		t.Errorf("Join on a deleted parent: %v", err)
	}
	if err := d.Restore(n, nil); err == nil || !strings.Contains(err.Error(), "p1") {
		t.Errorf("Restore with the user's parent gone: %v", err)
	}
}

func TestPassthruTakesOneContainer(t *testing.T) {
	d := testHost(t)
	n := prepared(t, d, map[string]string{OptParent: "p0", OptMode: "passthru"})
	if err := d.CreateNetwork(n); err != nil {
		t.Fatal(err)
	}
	p1, ns1 := testSandbox(t, "sb1")
	p2, ns2 := testSandbox(t, "sb2")
	if err := d.Join(n, testEndpoint(p1, "10.0.0.2/24"), ns1); err != nil {
		t.Fatal(err)
	}
	err := d.Join(n, testEndpoint(p2, "10.0.0.3/24"), ns2)
	if err == nil || !errdefs.Is(err, errdefs.KindConflict) || !strings.Contains(err.Error(), "passthru mode") {
		t.Errorf("second passthru Join: %v", err)
	}
	if d.EndpointPresent(n, testEndpoint(p2, "10.0.0.3/24")) {
		t.Error("the refused Join left an interface")
	}
}

func TestInternalNetwork(t *testing.T) {
	d := testHost(t)
	before := links(t, d)
	n := prepared(t, d, map[string]string{})
	if !n.Internal {
		t.Fatal("a network without parent is not internal")
	}
	if s, _, err := d.DefaultSubnet(n); err != nil || s.Prefix.IsValid() {
		t.Errorf("DefaultSubnet of an internal network = %v %v, want none (a default pool)", s, err)
	}
	if err := d.CreateNetwork(n); err != nil {
		t.Fatal(err)
	}
	br, err := d.nl.LinkByName("mv-0123456789ab")
	if err != nil || br.Type() != "bridge" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("internal parent: %v %+v", err, br)
	}
	path, ns := testSandbox(t, "sb1")
	ep := testEndpoint(path, "10.5.0.2/24")
	if err := d.Join(n, ep, ns); err != nil {
		t.Fatal(err)
	}
	// A second network cannot reuse the name; nothing of the first is touched.
	if err := d.CreateNetwork(n); !errdefs.Is(err, errdefs.KindConflict) || !d.EndpointPresent(n, ep) {
		t.Errorf("second create: %v", err)
	}
	// Restore recreates a deleted parent (its macvlans go with it and are re-plugged).
	if err := d.nl.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	if d.EndpointPresent(n, ep) {
		t.Error("a macvlan outlived its parent")
	}
	if err := d.Restore(n, []driver.Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	if err := d.Join(n, ep, ns); err != nil {
		t.Fatalf("re-plug after restore: %v", err)
	}
	if err := d.Leave(n, ep); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNetwork(n); err != nil {
		t.Fatal(err)
	}
	if got := links(t, d); got != before {
		t.Errorf("links after delete %q, want %q", got, before)
	}
}

// TestVLANParent creates parent=p0.100. Without 802.1q in the kernel the creation must fail
// with a message that says so and leave nothing; with it, the sub-interface is cnet's and
// goes with the network.
func TestVLANParent(t *testing.T) {
	d := testHost(t)
	before := links(t, d)
	n := prepared(t, d, map[string]string{OptParent: "p0.100"})
	if n.State[stateVLANCreated] != "true" {
		t.Fatalf("state %v: cnet must note that it creates p0.100", n.State)
	}
	if _, _, err := d.DefaultSubnet(n); err == nil || !strings.Contains(err.Error(), "macvlan network m needs --subnet: its parent p0.100 has no IPv4 address") {
		t.Errorf("DefaultSubnet on a VLAN yet to be created: %v", err)
	}
	err := d.CreateNetwork(n)
	if got := links(t, d); err != nil && got != before {
		t.Errorf("a failed create left links: %q, want %q", got, before)
	}
	if err != nil {
		if !strings.Contains(err.Error(), "this kernel has no 802.1q VLAN support (module 8021q)") {
			t.Fatalf("create: %v", err)
		}
		t.Skipf("this kernel has no 802.1q VLAN support (module 8021q): %v", err)
	}
	v, err := d.nl.LinkByName("p0.100")
	if err != nil || v.Type() != "vlan" || v.(*netlink.Vlan).VlanId != 100 {
		t.Fatalf("p0.100: %v %+v", err, v)
	}
	if err := d.DeleteNetwork(n); err != nil {
		t.Fatal(err)
	}
	if got := links(t, d); got != before {
		t.Errorf("links after delete %q, want %q", got, before)
	}
}

func TestDefaultSubnetFromParent(t *testing.T) {
	d := testHost(t)
	n := prepared(t, d, map[string]string{OptParent: "p0"})
	_, _, err := d.DefaultSubnet(n)
	if err == nil || !errdefs.Is(err, errdefs.KindInvalid) || err.Error() != "macvlan network m needs --subnet: its parent p0 has no IPv4 address to take the subnet from" {
		t.Errorf("without an address: %v", err)
	}
	p0, _ := d.nl.LinkByName("p0")
	for _, a := range []string{"10.5.0.7/24", "10.6.0.1/24"} {
		addr, _ := netlink.ParseAddr(a)
		if err := d.nl.AddrAdd(p0, addr); err != nil {
			t.Fatal(err)
		}
	}
	_, dflt, _ := net.ParseCIDR("0.0.0.0/0")
	if err := d.nl.RouteAdd(&netlink.Route{LinkIndex: p0.Attrs().Index, Dst: dflt, Gw: net.ParseIP("10.5.0.254")}); err != nil {
		t.Fatal(err)
	}
	s, reserved, err := d.DefaultSubnet(n)
	got := fmt.Sprintf("%v via %v reserving %v", s.Prefix, s.Gateway, reserved)
	if err != nil || got != "10.5.0.0/24 via 10.5.0.254 reserving map[p0:10.5.0.7]" {
		t.Errorf("DefaultSubnet = %s (%v)", got, err)
	}
}
