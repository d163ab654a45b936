package dns

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/sandbox"
)

// newNS makes a throwaway network namespace (lo up) for one test and checks on cleanup that
// neither it nor its mount is left.
func newNS(t testing.TB) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces and nftables tables")
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := sandbox.Create(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sandbox.Delete(path); err != nil {
			t.Error(err)
		}
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		if strings.Contains(string(mounts), path) {
			t.Errorf("mount of %s left behind", path)
		}
	})
	return path
}

// inNS runs fn with its sockets made inside the namespace at path (a client in the container).
func inNS(t testing.TB, path string, fn func()) {
	t.Helper()
	if err := inNamespace(path, func() error { fn(); return nil }); err != nil {
		t.Fatal(err)
	}
}

// queryIn sends one query from inside the namespace; nil on timeout or error.
func queryIn(t testing.TB, ns, network, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	var resp *mdns.Msg
	inNS(t, ns, func() {
		c := &mdns.Client{Net: network, Timeout: 2 * time.Second}
		resp, _, _ = c.Exchange(new(mdns.Msg).SetQuestion(name, qtype), addr)
	})
	return resp
}

func dnsTable(t testing.TB, ns string) *nftables.Table {
	t.Helper()
	f, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == nftTable {
			return tb
		}
	}
	return nil
}

func TestServeInNamespace(t *testing.T) {
	ns := newNS(t)
	// The upstream runs on the test's (the daemon's) loopback, like systemd-resolved's
	// 127.0.0.53: the container cannot reach it, the daemon dials it.
	up := startStub(t, answerA(1))
	r := NewResolver(fixture(), NewForwarder(ForwarderConfig{}), Config{
		Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{up.addr}, Dial: NamespaceDialer(ns)})
	l, err := Serve(ns, r)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if dnsTable(t, ns) == nil {
		t.Fatalf("no table %s in the sandbox", nftTable)
	}

	// A server of the container's own on 0.0.0.0:53, UDP and TCP, started after the resolver.
	var own []*mdns.Server
	inNS(t, ns, func() {
		pc, err := net.ListenPacket("udp4", "0.0.0.0:53")
		if err != nil {
			t.Errorf("the container's own UDP server on 0.0.0.0:53: %v", err)
			return
		}
		ln, err := net.Listen("tcp4", "0.0.0.0:53")
		if err != nil {
			pc.Close()
			t.Errorf("the container's own TCP server on 0.0.0.0:53: %v", err)
			return
		}
		h := mdns.HandlerFunc(func(w mdns.ResponseWriter, m *mdns.Msg) {
			resp := new(mdns.Msg).SetReply(m)
			rr, _ := mdns.NewRR(m.Question[0].Name + " 5 IN A 192.0.2.99")
			resp.Answer = []mdns.RR{rr}
			_ = w.WriteMsg(resp)
		})
		own = []*mdns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}}
	})
	for _, srv := range own {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		defer srv.Shutdown()
	}

	for _, network := range []string{"udp", "tcp"} {
		if m := queryIn(t, ns, network, "127.0.0.11:53", "c1.", mdns.TypeA); m == nil || len(addrs(m)) != 1 || addrs(m)[0] != "172.18.0.2" {
			t.Errorf("%s c1 at 127.0.0.11:53: %v", network, m)
		}
		if m := queryIn(t, ns, network, "127.0.0.11:53", "example.com.", mdns.TypeA); m == nil || len(m.Answer) != 1 {
			t.Errorf("%s forwarded to the daemon's loopback upstream: %v", network, m)
		}
		if m := queryIn(t, ns, network, "127.0.0.1:53", "mine.", mdns.TypeA); m == nil || len(addrs(m)) != 1 || addrs(m)[0] != "192.0.2.99" {
			t.Errorf("%s the container's own server beside the resolver: %v", network, m)
		}
	}

	// busybox's nslookup, as in the seed.
	out, err := exec.Command("nsenter", "--net="+ns, "busybox", "nslookup", "c1", "127.0.0.11").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "172.18.0.2") {
		t.Errorf("busybox nslookup c1 127.0.0.11: %v\n%s", err, out)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if dnsTable(t, ns) != nil {
		t.Errorf("table %s left in the sandbox after Close", nftTable)
	}
}

// Serving twice in one namespace (a daemon restarted) replaces the table: one transaction, no
// stale ports.
func TestServeReplacesTable(t *testing.T) {
	ns := newNS(t)
	r := NewResolver(fixture(), nil, Config{Networks: []string{"mybridge"}})
	l1, err := Serve(ns, r)
	if err != nil {
		t.Fatal(err)
	}
	l1.udp.Close() // the old daemon's sockets die with it; its table stays
	l2, err := Serve(ns, r)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if m := queryIn(t, ns, "udp", "127.0.0.11:53", "c1.", mdns.TypeA); m == nil || len(m.Answer) != 1 {
		t.Fatalf("after a second Serve: %v", m)
	}
	l1.nsPath = "" // its table is l2's now
	l1.Close()
}

// Upstreams that are not on loopback are dialled from inside the sandbox, through its own
// interfaces: here an address only the sandbox has.
func TestNamespaceDialerDialsInside(t *testing.T) {
	ns := newNS(t)
	h, err := sandbox.Handle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("192.0.2.53/32")
	if err := h.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	var pc net.PacketConn
	inNS(t, ns, func() { pc, err = net.ListenPacket("udp4", "192.0.2.53:0") })
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, m *mdns.Msg) {
		answerA(1)(w, m, false)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	defer srv.Shutdown()

	r := NewResolver(fixture(), NewForwarder(ForwarderConfig{Timeout: time.Second}), Config{
		Upstreams: []netip.AddrPort{pc.LocalAddr().(*net.UDPAddr).AddrPort()}, Dial: NamespaceDialer(ns)})
	if m := ask(t, r, mkQuery("example.com.", mdns.TypeA), false); len(m.Answer) != 1 {
		t.Fatalf("upstream inside the sandbox: %v", m)
	}
}

// TestListenerMemory measures what one sandbox's resolver costs the daemon: Go heap and
// goroutine stacks, for 100 listeners that each answered a query.
func TestListenerMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 100 namespaces")
	}
	const n = 100
	nss := make([]string, n)
	for i := range nss {
		nss[i] = newNS(t)
	}
	tb := fixture()
	f := NewForwarder(ForwarderConfig{})
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	ls := make([]*Listener, n)
	for i, ns := range nss {
		r := NewResolver(tb, f, Config{Networks: []string{"mybridge"}, Upstreams: []netip.AddrPort{deadPort(t)}})
		l, err := Serve(ns, r)
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
	}
	for _, ns := range nss {
		if m := queryIn(t, ns, "udp", "127.0.0.11:53", "yceffort.", mdns.TypeA); m == nil || len(m.Answer) != 3 {
			t.Fatalf("query in %s: %v", ns, m)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	heap := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc)) / n
	stack := (int64(m1.StackInuse) - int64(m0.StackInuse)) / n
	t.Logf("per sandbox resolver: %d B heap + %d B goroutine stacks = %.1f KiB; %d goroutines",
		heap, stack, float64(heap+stack)/1024, (runtime.NumGoroutine()-g0)/n)
	if heap+stack > 64<<10 {
		t.Errorf("a resolver costs %d bytes, more than 64 KiB", heap+stack)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	}
}
