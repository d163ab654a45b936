package integration

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// v6Segment is newSegment with IPv6 too: the host is 10.99.0.1 and fd99::1 on uplink0, the
// client host 10.99.0.2 and fd99::2. Addresses skip DAD so that they work at once.
func v6Segment(t *testing.T, h *testenv.Host) *segment {
	t.Helper()
	seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
	seg.client(t, "ip", "addr", "add", "fd99::2/64", "dev", "uplink0p", "nodad")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
	h.MustRun("ip", "addr", "add", "fd99::1/64", "dev", "uplink0", "nodad")
	return seg
}

// ip6On is a container's IPv6 address on a network, as inspect shows it.
func ip6On(t *testing.T, h *testenv.Host, name, network string) string {
	t.Helper()
	return strings.TrimSpace(h.MustCLI("inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").GlobalIPv6Address}}", name))
}

// webRoot is a directory httpd serves "served by web" from.
func webRoot(t *testing.T, h *testenv.Host) string {
	t.Helper()
	www := filepath.Join(h.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return www
}

// TestIPv6DualStack is the bridge scenarios again over IPv6 on a dual-stack network: the
// addresses inspect shows, ping between containers by address and by name (AAAA), /etc/hosts,
// the way out through masquerade (the client host sees the host's address), and containers
// reachable on both families.
func TestIPv6DualStack(t *testing.T) {
	h := testenv.NewHost(t)
	seg := v6Segment(t, h)
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:1::/64", "dual")
	n := inspectNetwork(t, h, "dual")
	if !n.EnableIPv6 || n.EnableIPv4 != nil || len(n.IPAM.Config) != 2 || n.IPAM.Config[0].Subnet != "172.18.0.0/16" ||
		n.IPAM.Config[1].Subnet != "2001:db8:1::/64" || n.IPAM.Config[1].Gateway != "2001:db8:1::1" {
		t.Fatalf("inspect dual: EnableIPv6 %v EnableIPv4 %v IPAM %+v", n.EnableIPv6, n.EnableIPv4, n.IPAM.Config)
	}
	if out := h.MustRun("ip", "-6", "-o", "addr", "show", "dev", "br-"+n.ID[:12]); !strings.Contains(out, "2001:db8:1::1/64") || strings.Contains(out, "tentative") {
		t.Errorf("the bridge's IPv6 gateway (want 2001:db8:1::1/64, usable at once): %s", out)
	}
	runSleeper(t, h, "c1", "--network", "dual")
	runSleeper(t, h, "c2", "--network", "dual", "--ip6", "2001:db8:1::99")
	c := inspectContainer(t, h, "c1")
	es := c.NetworkSettings.Networks["dual"]
	if es.IPAddress != "172.18.0.2" || es.GlobalIPv6Address != "2001:db8:1::2" || es.GlobalIPv6PrefixLen != 64 ||
		es.IPv6Gateway != "2001:db8:1::1" || es.Gateway != "172.18.0.1" || es.MacAddress != "02:42:ac:12:00:02" {
		t.Errorf("c1 on dual: %+v", es)
	}
	if got := ip6On(t, h, "c2", "dual"); got != "2001:db8:1::99" {
		t.Errorf("c2 --ip6 got %s", got)
	}
	if got := h.MustCLI("network", "inspect", "-f", `{{range .Containers}}{{.Name}} {{.IPv4Address}} {{.IPv6Address}};{{end}}`, "dual"); !strings.Contains(got, "c1 172.18.0.2/16 2001:db8:1::2/64;") {
		t.Errorf("network inspect containers: %s", got)
	}
	// Router advertisements are refused by the bridge and by the container's interface.
	if got := strings.TrimSpace(h.MustRun("cat", "/proc/sys/net/ipv6/conf/br-"+n.ID[:12]+"/accept_ra")); got != "0" {
		t.Errorf("the bridge's accept_ra = %s, want 0", got)
	}
	if got := strings.TrimSpace(h.MustCLI("exec", "c1", "busybox", "sysctl", "-n", "net.ipv6.conf.eth0.accept_ra")); got != "0" {
		t.Errorf("c1's eth0 accept_ra = %s, want 0", got)
	}
	route := h.MustCLI("exec", "c1", "busybox", "ip", "-6", "route")
	if !strings.Contains(route, "default via 2001:db8:1::1 dev eth0") {
		t.Errorf("IPv6 routes in c1:\n%s", route)
	}
	hosts := h.MustCLI("exec", "c1", "busybox", "cat", "/etc/hosts")
	if !strings.Contains(hosts, "172.18.0.2\t"+c.ID[:12]) || !strings.Contains(hosts, "2001:db8:1::2\t"+c.ID[:12]) {
		t.Errorf("/etc/hosts of c1:\n%s", hosts)
	}
	execPing(t, h, "c1", "2001:db8:1::99")
	execPing(t, h, "c1", "172.18.0.3")
	hostPing(t, h, "2001:db8:1::2")
	// By name: the embedded DNS answers AAAA with the IPv6 address.
	if out, errOut, code := h.CLI("exec", "c1", "busybox", "ping", "-6", "-c", "1", "-W", "2", "c2"); code != 0 || !strings.Contains(out, "2001:db8:1::99") {
		t.Errorf("ping -6 c2 by name (exit %d): %s%s", code, out, errOut)
	}
	if out, errOut, code := h.CLI("exec", "c1", "busybox", "ping", "-4", "-c", "1", "-W", "2", "c2"); code != 0 || !strings.Contains(out, "172.18.0.3") {
		t.Errorf("ping -4 c2 by name (exit %d): %s%s", code, out, errOut)
	}
	// The reverse name of an IPv6 address is the container's, as for IPv4.
	if out, _, _ := h.CLI("exec", "c1", "busybox", "nslookup", "2001:db8:1::99", "127.0.0.11"); !strings.Contains(out, "c2.dual") {
		t.Errorf("PTR of c2's IPv6 address:\n%s", out)
	}

	// Out through masquerade: the client host, which has no route to 2001:db8:1::/64, sees
	// the host's own address.
	execPing(t, h, "c1", "fd99::2")
	got, seen := atClient(t, h, seg, func() { h.MustCLI("exec", "c1", "sh", "-c", "echo hi | busybox nc fd99::2 7000") })
	if got != "hi\n" || !strings.Contains(seen, "fd99::1") || strings.Contains(seen, "2001:db8:1:") {
		t.Errorf("the client sees the container's IPv6 connection as:\n%s\nwant it from the host's fd99::1", seen)
	}

	// A restart keeps every address, and the next container gets the next free one.
	h.KillDaemon()
	h.StartDaemon()
	execPing(t, h, "c1", "2001:db8:1::99")
	runSleeper(t, h, "c3", "--network", "dual")
	if got := ip6On(t, h, "c3", "dual"); got != "2001:db8:1::3" {
		t.Errorf("c3 after a restart got %s, want 2001:db8:1::3", got)
	}
}

// TestIPv6Published publishes ports over IPv6: on all addresses (both families, from the
// client host), on the host's IPv6 address only, and on [::1] (the host only), TCP and UDP.
func TestIPv6Published(t *testing.T) {
	h := testenv.NewHost(t)
	seg := v6Segment(t, h)
	www := webRoot(t, h)
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:2::/64", "pub")
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "web", "--network", "pub",
		"-p", "5000:80", "-p", "[fd99::1]:5002:80", "-p", "[::1]:5001:80", "busybox", "httpd", "-f", "-p", "[::]:80", "-h", www)
	out := h.MustCLI("port", "web")
	for _, want := range []string{"80/tcp -> 0.0.0.0:5000\n80/tcp -> [::]:5000\n", "80/tcp -> [fd99::1]:5002\n", "80/tcp -> [::1]:5001\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("cnet port web lacks %q:\n%s", want, out)
		}
	}
	waitFor(t, "httpd", func() bool {
		out, _ := httpGet(h, seg.pid, "fd99::1", "5000")
		return strings.Contains(out, "served by web")
	})
	for _, c := range []struct{ who, pid, addr, port string }{
		{"the client over IPv6", seg.pid, "fd99::1", "5000"},
		{"the client over IPv4", seg.pid, "10.99.0.1", "5000"},
		{"the client on the IPv6 host address", seg.pid, "fd99::1", "5002"},
		{"the host on [::1]", "", "::1", "5001"},
		{"the host on [::1] to a port on all addresses", "", "::1", "5000"},
		{"the host on its own IPv6 address", "", "fd99::1", "5000"},
	} {
		if out, err := httpGet(h, c.pid, c.addr, c.port); err != nil || !strings.Contains(out, "served by web") {
			t.Errorf("from %s (%s port %s): %v %q", c.who, c.addr, c.port, err, out)
		}
	}
	if out, _ := httpGet(h, seg.pid, "10.99.0.1", "5002"); strings.Contains(out, "served by web") {
		t.Errorf("a port published on [fd99::1] answered on the host's IPv4 address")
	}
	if out, _ := httpGet(h, seg.pid, "fd99::1", "5001"); strings.Contains(out, "served by web") {
		t.Errorf("a port published on [::1] answered the client host")
	}
	if rules := h.MustRun("nft", "list", "map", "ip6", "cnet", "ports_any"); !strings.Contains(rules, "2001:db8:2::2") {
		t.Errorf("ip6 ports_any:\n%s", rules)
	}

	// UDP over IPv6 through the published port, echoed by a server in the container.
	runSleeper(t, h, "udp", "--network", "pub", "-p", "5353:5300/udp")
	key := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "udp"))
	if reply := udpEcho(t, h, key, "udp6", "[::]:5300", "/proc/"+seg.pid+"/ns/net", "[fd99::1]:5353"); reply != "echo:ping" {
		t.Errorf("UDP over IPv6 through the published port answered %q", reply)
	}

	// Explicit 0.0.0.0 is IPv4 only and [::] IPv6 only, as in Docker; given together they
	// hold one port of each family.
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "fams", "--network", "pub", "-p", "0.0.0.0:5005:80", "-p", "[::]:5006:80",
		"-p", "0.0.0.0:5007:80", "-p", "[::]:5007:80", "busybox", "httpd", "-f", "-p", "[::]:80", "-h", www)
	waitFor(t, "fams' httpd", func() bool {
		out, _ := httpGet(h, seg.pid, "10.99.0.1", "5005")
		return strings.Contains(out, "served by web")
	})
	for _, c := range []struct {
		addr, port string
		want       bool
	}{{"10.99.0.1", "5005", true}, {"fd99::1", "5005", false}, {"fd99::1", "5006", true}, {"10.99.0.1", "5006", false},
		{"10.99.0.1", "5007", true}, {"fd99::1", "5007", true}} {
		if out, _ := httpGet(h, seg.pid, c.addr, c.port); strings.Contains(out, "served by web") != c.want {
			t.Errorf("fams from the client on %s port %s: got %q, want served %v", c.addr, c.port, out, c.want)
		}
	}

	// IPv4 ports go where the IPv4 default route goes, IPv6 ones where the IPv6 one goes: a
	// container first on an IPv6-only network, then on an IPv4 one, has both.
	h.MustCLI("network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd42:9::/64", "six")
	h.MustCLI("network", "create", "only4")
	h.MustCLI("create", "--rootfs", "/", "--name", "split", "--network", "six", "-p", "5004:80", "busybox", "httpd", "-f", "-p", "[::]:80", "-h", www)
	h.MustCLI("network", "connect", "only4", "split")
	h.MustCLI("start", "split")
	if got := h.MustCLI("port", "split"); got != "80/tcp -> 0.0.0.0:5004\n80/tcp -> [::]:5004\n" {
		t.Errorf("cnet port split = %q", got)
	}
	waitFor(t, "split's httpd", func() bool {
		out, _ := httpGet(h, seg.pid, "fd99::1", "5004")
		return strings.Contains(out, "served by web")
	})
	if out, err := httpGet(h, seg.pid, "10.99.0.1", "5004"); err != nil || !strings.Contains(out, "served by web") {
		t.Errorf("split over IPv4 (its IPv4 network is its second): %v %q", err, out)
	}
	h.MustCLI("rm", "-f", "fams", "split")

	// Refused: a port on an IPv6 address for a container without IPv6, and nothing changes.
	_, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--name", "v4web", "--network", "only4", "-p", "[::1]:5003:80", "busybox", "sleep", "60")
	if code == 0 || !strings.Contains(errOut, "has no IPv6 address") {
		t.Errorf("-p [::1] on an IPv4-only network: exit %d %q", code, errOut)
	}
	h.CLI("rm", "-f", "v4web")
	h.MustCLI("rm", "-f", "web", "udp")
	if rules := h.MustRun("nft", "list", "map", "ip6", "cnet", "ports_any"); strings.Contains(rules, "2001:db8:2::") {
		t.Errorf("after rm, ip6 ports_any still holds web's ports:\n%s", rules)
	}
}

// TestIPv6Isolation: two IPv6 networks cannot reach each other either way, an --internal one
// reaches nothing beyond its bridge, and enable_icc=false cuts IPv6 between its containers.
func TestIPv6Isolation(t *testing.T) {
	h := testenv.NewHost(t)
	v6Segment(t, h)
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:a::/64", "neta")
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:b::/64", "netb")
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:c::/64", "--internal", "closed")
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:d::/64", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
	runSleeper(t, h, "a1", "--net", "neta")
	runSleeper(t, h, "a2", "--net", "neta")
	runSleeper(t, h, "b1", "--net", "netb")
	runSleeper(t, h, "i1", "--net", "closed")
	runSleeper(t, h, "q1", "--net", "quiet")
	runSleeper(t, h, "q2", "--net", "quiet")
	a1, b1 := ip6On(t, h, "a1", "neta"), ip6On(t, h, "b1", "netb")
	execPing(t, h, "a2", a1)
	noPing(t, h, "a1", b1)
	noPing(t, h, "b1", a1)
	execPing(t, h, "a1", "fd99::2")
	noPing(t, h, "i1", "fd99::2")
	noPing(t, h, "q1", ip6On(t, h, "q2", "quiet"))
	execPing(t, h, "q1", "fd99::2")
}

// TestIPv6Only is a network with no IPv4 at all (--ipv4=false): containers get only an IPv6
// address and a random MAC, find each other by name, and reach the client host.
func TestIPv6Only(t *testing.T) {
	h := testenv.NewHost(t)
	v6Segment(t, h)
	h.MustCLI("network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd42:1::/64", "v6only")
	n := inspectNetwork(t, h, "v6only")
	if n.EnableIPv4 == nil || *n.EnableIPv4 || !n.EnableIPv6 || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "fd42:1::/64" {
		t.Fatalf("inspect v6only: EnableIPv4 %v EnableIPv6 %v IPAM %+v", n.EnableIPv4, n.EnableIPv6, n.IPAM.Config)
	}
	runSleeper(t, h, "s1", "--network", "v6only")
	runSleeper(t, h, "s2", "--network", "v6only")
	es := inspectContainer(t, h, "s1").NetworkSettings.Networks["v6only"]
	if es.IPAddress != "" || es.Gateway != "" || es.GlobalIPv6Address != "fd42:1::2" || es.IPv6Gateway != "fd42:1::1" ||
		!strings.HasPrefix(es.MacAddress, "02:42:") {
		t.Errorf("s1 on v6only: %+v", es)
	}
	if addr := h.MustCLI("exec", "s1", "busybox", "ip", "-4", "-o", "addr", "show", "eth0"); strings.TrimSpace(addr) != "" {
		t.Errorf("s1 has IPv4 on an IPv6-only network: %s", addr)
	}
	if out, errOut, code := h.CLI("exec", "s1", "busybox", "ping", "-c", "1", "-W", "2", "s2"); code != 0 || !strings.Contains(out, "fd42:1::3") {
		t.Errorf("ping s2 by name (exit %d): %s%s", code, out, errOut)
	}
	execPing(t, h, "s1", "fd99::2")
}

// TestIPv6Refusals: bad IPv6 input is refused with a message naming the fix, and nothing is
// created; a network with --ipv6 and no IPv6 subnet gets a /64 of the engine's ULA pool.
func TestIPv6Refusals(t *testing.T) {
	h := testenv.NewHost(t)
	before := h.MustCLI("network", "ls", "-q")
	links := h.MustRun("ip", "-o", "link")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet", "2001:db8:9::/64", "n1"}, "an IPv6 subnet needs --ipv6"},
		{[]string{"--ipv4=false", "n1"}, "--ipv4=false needs --ipv6"},
		{[]string{"--ipv6", "--ipv4=false", "--subnet", "10.1.0.0/16", "--subnet", "2001:db8:9::/64", "n1"}, "has no IPv4"},
		{[]string{"--ipv6", "--subnet", "2001:db8:9::/40", "n1"}, "2001:db8:9::/40"},
		{[]string{"--ipv6", "--subnet", "2001:db8:9::/64", "--gateway", "2001:db8:8::1", "n1"}, "no matching subnet"},
		{[]string{"--ipv6", "-d", "macvlan", "-o", "parent=nosuch0", "n1"}, "nosuch0"},
	} {
		args := append([]string{"network", "create"}, c.args...)
		if _, errOut, code := h.CLI(args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("network create %v: exit %d %q, want an error with %q", c.args, code, errOut, c.want)
		}
	}
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:9::/64", "taken")
	if _, errOut, code := h.CLI("network", "create", "--ipv6", "--subnet", "2001:db8:9::/64", "n2"); code == 0 || !strings.Contains(errOut, "overlaps") {
		t.Errorf("an overlapping IPv6 subnet: exit %d %q", code, errOut)
	}
	h.MustCLI("network", "create", "plain4")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", "plain4", "--ip6", "2001:db8:9::5"}, "--ip6 needs a network created with --ipv6"},
		{[]string{"--network", "taken", "--ip6", "2001:db8:7::5"}, "does not belong to"},
		{[]string{"--network", "taken", "--ip6", "172.18.0.5"}, "invalid IPv6 address"},
	} {
		args := append(append([]string{"run", "--rootfs", "/", "-d", "--name", "bad"}, c.args...), "busybox", "sleep", "60")
		if _, errOut, code := h.CLI(args...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("run %v: exit %d %q, want an error with %q", c.args, code, errOut, c.want)
		}
		h.CLI("rm", "-f", "bad")
	}
	h.MustCLI("network", "rm", "taken", "plain4")
	if after := h.MustCLI("network", "ls", "-q"); after != before {
		t.Errorf("networks after the refusals:\n%s\nbefore:\n%s", after, before)
	}
	if after := h.MustRun("ip", "-o", "link"); strings.Count(after, "\n") != strings.Count(links, "\n") {
		t.Errorf("links after the refusals:\n%s\nbefore:\n%s", after, links)
	}

	// No IPv6 subnet given: a /64 of the engine's unique local /48, the next one for the next.
	h.MustCLI("network", "create", "--ipv6", "auto1")
	h.MustCLI("network", "create", "--ipv6", "auto2")
	p1 := netip.MustParsePrefix(inspectNetwork(t, h, "auto1").IPAM.Config[1].Subnet)
	p2 := netip.MustParsePrefix(inspectNetwork(t, h, "auto2").IPAM.Config[1].Subnet)
	if p1.Bits() != 64 || p1.Addr().As16()[0] != 0xfd || p2.Bits() != 64 || p1 == p2 ||
		netip.PrefixFrom(p1.Addr(), 48).Masked() != netip.PrefixFrom(p2.Addr(), 48).Masked() {
		t.Errorf("default IPv6 subnets %s and %s: want two /64s of one fdXX:XXXX:XXXX::/48", p1, p2)
	}
}

// TestIPv6DefaultBridge gives the default bridge IPv6 through the daemon's flags, as dockerd's
// --ipv6 --fixed-cidr-v6 do, and takes it away again at the next start.
func TestIPv6DefaultBridge(t *testing.T) {
	h := testenv.NewHostWith(t, testenv.HostOptions{NoDaemon: true})
	h.StartDaemon("--ipv6", "--fixed-cidr-v6", "fd00:cafe::/64", "--default-ipv6-pool", "fd00:beef::/56")
	n := inspectNetwork(t, h, "bridge")
	if !n.EnableIPv6 || len(n.IPAM.Config) != 2 || n.IPAM.Config[1].Subnet != "fd00:cafe::/64" {
		t.Fatalf("default bridge with --ipv6: EnableIPv6 %v IPAM %+v", n.EnableIPv6, n.IPAM.Config)
	}
	// Networks without an IPv6 subnet take theirs from --default-ipv6-pool.
	h.MustCLI("network", "create", "--ipv6", "pooled")
	if got := inspectNetwork(t, h, "pooled").IPAM.Config[1].Subnet; got != "fd00:beef::/64" {
		t.Errorf("a network's default IPv6 subnet with --default-ipv6-pool fd00:beef::/56: %s", got)
	}
	h.MustCLI("network", "rm", "pooled")
	runSleeper(t, h, "d1")
	runSleeper(t, h, "d2")
	c := inspectContainer(t, h, "d1").NetworkSettings
	if c.GlobalIPv6Address != "fd00:cafe::2" || c.IPv6Gateway != "fd00:cafe::1" || c.IPAddress != "172.17.0.2" {
		t.Errorf("d1's top-level addresses: ip %s v6 %s gw6 %s", c.IPAddress, c.GlobalIPv6Address, c.IPv6Gateway)
	}
	execPing(t, h, "d2", "fd00:cafe::2")
	h.MustCLI("rm", "-f", "d1", "d2")
	h.StopDaemon()
	h.StartDaemon()
	if n := inspectNetwork(t, h, "bridge"); n.EnableIPv6 || len(n.IPAM.Config) != 1 {
		t.Errorf("default bridge restarted without --ipv6: EnableIPv6 %v IPAM %+v", n.EnableIPv6, n.IPAM.Config)
	}
	if _, errOut, code := h.CLI("version"); code != 0 {
		t.Fatal(errOut)
	}
}

// TestIPv6Macvlan: a macvlan network with an IPv6 subnet of the parent's segment; its
// containers reach the segment's other hosts over IPv6 directly, with no NAT.
func TestIPv6Macvlan(t *testing.T) {
	h := testenv.NewHost(t)
	v6Segment(t, h)
	h.MustCLI("network", "create", "-d", "macvlan", "-o", "parent=uplink0", "--ipv6",
		"--subnet", "10.99.0.0/24", "--ip-range", "10.99.0.128/25",
		"--subnet", "fd99::/64", "--ip-range", "fd99::100/120", "--gateway", "fd99::1", "mv6")
	runSleeper(t, h, "m1", "--network", "mv6")
	if got := ip6On(t, h, "m1", "mv6"); got != "fd99::100" {
		t.Fatalf("m1 on mv6 got %q, want fd99::100", got)
	}
	execPing(t, h, "m1", "fd99::2")
	if route := h.MustCLI("exec", "m1", "busybox", "ip", "-6", "route"); !strings.Contains(route, "default via fd99::1 dev eth0") {
		t.Errorf("IPv6 routes in m1:\n%s", route)
	}
}

// TestIPv6DNS: the embedded resolver answers AAAA for names, aliases and hostnames on IPv6
// networks (A only where there is IPv4: NODATA on an IPv6-only network), and forwards to an
// upstream server that is reached over IPv6.
func TestIPv6DNS(t *testing.T) {
	h := testenv.NewHost(t)
	seg := v6Segment(t, h)
	h.MustCLI("network", "create", "--ipv6", "--subnet", "2001:db8:3::/64", "dual")
	h.MustCLI("network", "create", "--ipv6", "--ipv4=false", "--subnet", "fd42:3::/64", "v6only")
	runSleeper(t, h, "c1", "--network", "dual", "--network-alias", "web1", "--hostname", "h1")
	runSleeper(t, h, "c2", "--network", "dual", "--dns", "fd99::2")
	runSleeper(t, h, "s1", "--network", "v6only")
	h.MustCLI("network", "connect", "v6only", "c2")
	for _, name := range []string{"c1", "web1", "h1", "c1.dual"} {
		if got := aaaas(query(t, h, "c2", name, mdns.TypeAAAA, "udp")); !slices.Equal(got, []string{"2001:db8:3::2"}) {
			t.Errorf("AAAA %s = %v, want 2001:db8:3::2", name, got)
		}
	}
	if got := addrs(query(t, h, "c2", "c1", mdns.TypeA, "udp")); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("A c1 = %v, want only the IPv4 address", got)
	}
	if got := aaaas(query(t, h, "c2", "s1", mdns.TypeAAAA, "tcp")); !slices.Equal(got, []string{"fd42:3::2"}) {
		t.Errorf("AAAA s1 over TCP = %v", got)
	}
	if m := query(t, h, "c2", "s1", mdns.TypeA, "udp"); m.Rcode != mdns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("A of an IPv6-only container: %s with %d answers, want NODATA", mdns.RcodeToString[m.Rcode], len(m.Answer))
	}
	stub := startStubAt(t, h.Path("/proc/"+seg.pid+"/ns/net"), "[fd99::2]:53", "192.0.2.10", false)
	if got := addrs(query(t, h, "c2", "example.test", mdns.TypeA, "udp")); !slices.Equal(got, []string{"192.0.2.10"}) {
		t.Errorf("example.test through the IPv6 upstream: %v (the upstream saw %v)", got, stub.seen())
	}
}

// TestCNIDualStack: another runtime's namespace (cnitool's) on a dual-stack cnet network with
// a static address of each family (the ips capability): both in the result with their
// gateways, both on the interface, reached from a cnet container over IPv6 by address and by
// name; CHECK passes with both; DEL leaves nothing.
func TestCNIDualStack(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--ipv6", "--subnet", "10.78.0.0/24", "--subnet", "fd78::/64", "cni6")
	runSleeper(t, h, "c1", "--network", "cni6")
	r := newCNIRuntime(t, h, "cni6")
	ns := r.netns("pod6ns")
	out, err := r.runCap("add", "cni6", ns, "pod6", `{"ips":["10.78.0.50/24","fd78::50/64"]}`)
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	var res struct {
		IPs []struct{ Address, Gateway string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	if len(res.IPs) != 2 || res.IPs[0].Address != "10.78.0.50/24" || res.IPs[0].Gateway != "10.78.0.1" ||
		res.IPs[1].Address != "fd78::50/64" || res.IPs[1].Gateway != "fd78::1" {
		t.Fatalf("ADD result: %s", out)
	}
	if addr := h.MustRun("nsenter", "--net="+ns, "ip", "-o", "addr", "show", "eth0"); !strings.Contains(addr, "fd78::50/64") || !strings.Contains(addr, "10.78.0.50/24") {
		t.Errorf("eth0 in the runtime's namespace: %s", addr)
	}
	execPing(t, h, "c1", "fd78::50")
	if out, errOut, code := h.CLI("exec", "c1", "busybox", "ping", "-6", "-c", "1", "-W", "2", "pod6"); code != 0 || !strings.Contains(out, "fd78::50") {
		t.Errorf("ping -6 pod6 by name (exit %d): %s%s", code, out, errOut)
	}
	if out, err := r.runCap("check", "cni6", ns, "pod6", `{"ips":["10.78.0.50/24","fd78::50/64"]}`); err != nil {
		t.Errorf("cnitool check: %v\n%s", err, out)
	}
	if out, err := r.runCap("del", "cni6", ns, "pod6", `{"ips":["10.78.0.50/24","fd78::50/64"]}`); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	for _, e := range inspectNetwork(t, h, "cni6").Containers {
		if e.Name == "pod6" {
			t.Errorf("pod6 is still on cni6 after DEL: %+v", e)
		}
	}
}
