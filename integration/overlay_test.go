package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// waitUntil polls fn until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// overlayCluster is three hosts on two underlay subnets (192.168.1.0/24 and 172.31.1.0/24,
// the seed's topology) joined by a router, a three-member etcd, daemons with the given TTL.
// Before the hosts' own cleanup checks run, every container goes and the overlay networks are
// removed once, cluster-wide, and each host is given time to see it.
func overlayCluster(t *testing.T, ttl string) *testenv.Cluster {
	return overlayClusterOpts(t, testenv.ClusterOptions{Hosts: 3, TTL: ttl})
}

// fdb returns host h's own FDB entries of the overlay's vxlan device (the tunnel entries,
// not the bridge's).
func fdb(t *testing.T, h *testenv.Host, netID string) string {
	out, _ := h.Run("bridge", "fdb", "show", "dev", "vx-"+netID[:12])
	var self []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " self") {
			self = append(self, l)
		}
	}
	return strings.Join(self, "\n")
}

func neigh(t *testing.T, h *testenv.Host, netID string) string {
	out, _ := h.Run("ip", "neigh", "show", "dev", "vx-"+netID[:12])
	return out
}

func macOn(t *testing.T, h *testenv.Host, name, network string) string {
	t.Helper()
	return strings.TrimSpace(h.MustCLI("inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").MacAddress}}", name))
}

func resolves(t *testing.T, h *testenv.Host, from, name string) []string {
	t.Helper()
	got := addrs(query(t, h, from, name, mdns.TypeA, "udp"))
	sort.Strings(got)
	return got
}

func TestOverlayAcrossHosts(t *testing.T) {
	c := overlayCluster(t, "5")
	h1, h2, h3 := c.Hosts[0], c.Hosts[1], c.Hosts[2]

	// A network created on host 1 appears on hosts 2 and 3, global.
	id := strings.TrimSpace(h1.MustCLI("network", "create", "-d", "overlay", "ov1"))
	for _, h := range []*testenv.Host{h2, h3} {
		waitUntil(t, 10*time.Second, "ov1 on "+h.Underlay, func() bool {
			out, _, code := h.CLI("network", "ls")
			for _, line := range strings.Split(out, "\n") {
				if code == 0 && strings.Join(strings.Fields(line), " ") == id[:12]+" ov1 overlay global" {
					return true
				}
			}
			return false
		})
	}
	n := inspectNetwork(t, h2, "ov1")
	if n.Scope != "global" || n.Driver != "overlay" || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "10.0.0.0/24" ||
		n.IPAM.Config[0].Gateway != "10.0.0.1" || n.Options["com.docker.network.driver.mtu"] != "1450" {
		t.Fatalf("inspect ov1 on host 2: %+v", n)
	}
	// Another create of the same name anywhere is refused.
	expectRefused(t, h3, []string{"network", "create", "-d", "overlay", "ov1"}, "already exists")

	runSleeper(t, h1, "c1", "--network", "ov1")
	runSleeper(t, h2, "c2", "--network", "ov1", "--network-alias", "web")
	runSleeper(t, h3, "c3", "--network", "ov1", "--network-alias", "web")
	ip1, ip2, ip3 := ipOn(t, h1, "c1", "ov1"), ipOn(t, h2, "c2", "ov1"), ipOn(t, h3, "c3", "ov1")
	if len(map[string]bool{ip1: true, ip2: true, ip3: true}) != 3 {
		t.Fatalf("addresses across hosts are not distinct: %s %s %s", ip1, ip2, ip3)
	}
	// By address and by name, both ways, across the router.
	waitUntil(t, 5*time.Second, "c2 resolving on host 1", func() bool { return len(resolves(t, h1, "c1", "c2")) == 1 })
	execPing(t, h1, "c1", ip2)
	execPing(t, h1, "c1", "c2")
	execPing(t, h1, "c1", "c3")
	execPing(t, h3, "c3", "c1")
	execPing(t, h2, "c2", "c3.")
	// The alias holds both hosts' containers.
	waitUntil(t, 5*time.Second, "web → c2 and c3", func() bool {
		got := resolves(t, h1, "c1", "web")
		want := []string{ip2, ip3}
		sort.Strings(want)
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	// The vxlan device learns nothing and floods nothing: only static entries.
	if f := fdb(t, h1, id); strings.Contains(f, "00:00:00:00:00:00") || !strings.Contains(f, macOn(t, h2, "c2", "ov1")+" dst "+h2.Underlay) {
		t.Errorf("host 1's FDB on the overlay: %s", f)
	}
	if nb := neigh(t, h1, id); !strings.Contains(nb, ip3+" lladdr "+macOn(t, h3, "c3", "ov1")+" PERMANENT") {
		t.Errorf("host 1's neighbours on the overlay: %s", nb)
	}

	// An FDB entry deleted by hand comes back.
	mac3 := macOn(t, h3, "c3", "ov1")
	h1.MustRun("bridge", "fdb", "del", mac3, "dev", "vx-"+id[:12], "dst", h3.Underlay, "self")
	waitUntil(t, 5*time.Second, "host 1 restoring c3's FDB entry", func() bool {
		return strings.Contains(fdb(t, h1, id), mac3+" dst "+h3.Underlay)
	})
	execPing(t, h1, "c1", ip3)

	// VXLAN from an address that is no member's VTEP is dropped before the tunnel sees it:
	// the router (192.168.1.1) sends real VXLAN frames for ov1's VNI at host 1.
	vx := "vx-" + id[:12]
	vni := regexp.MustCompile(`vxlan id (\d+)`).FindStringSubmatch(h1.MustRun("ip", "-d", "link", "show", vx))
	if vni == nil {
		t.Fatalf("no VNI on %s", vx)
	}
	if got := inspectNetwork(t, h3, "ov1").Options["com.docker.network.driver.overlay.vxlanid_list"]; got != vni[1] {
		t.Errorf("inspect ov1 shows VNI %q, the device has %s", got, vni[1])
	}
	r := c.Router
	r.MustRun("ip", "link", "add", "vxr", "type", "vxlan", "id", vni[1], "dstport", "4789", "local", "192.168.1.1", "remote", h1.Underlay, "nolearning")
	r.MustRun("ip", "addr", "add", "10.0.0.250/24", "dev", "vxr")
	r.MustRun("ip", "link", "set", "vxr", "up")
	r.MustRun("ip", "neigh", "add", ip1, "lladdr", macOn(t, h1, "c1", "ov1"), "dev", "vxr", "nud", "permanent")
	dropped := func() int {
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(h1.MustRun("nft", "list", "table", "ip", "cnet_overlay"))
		if m == nil {
			t.Fatalf("no counter in host 1's VXLAN allowlist")
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	rx := func() string {
		return strings.TrimSpace(h1.MustRun("cat", "/sys/class/net/"+vx+"/statistics/rx_packets"))
	}
	dropsBefore, rxBefore := dropped(), rx()
	if out, err := r.Run("busybox", "ping", "-c", "3", "-W", "1", ip1); err == nil {
		t.Errorf("a non-member reached c1 over VXLAN:\n%s", out)
	}
	if d := dropped() - dropsBefore; d < 3 {
		t.Errorf("host 1's allowlist dropped %d packets of the non-member's 3", d)
	}
	if got := rx(); got != rxBefore {
		t.Errorf("host 1's %s received %s packets, before %s: the non-member's frames got through", vx, got, rxBefore)
	}
	r.MustRun("ip", "link", "del", "vxr")
	execPing(t, h1, "c1", ip3) // members still pass

	// Network removal is refused while a host has endpoints on it.
	expectRefused(t, h3, []string{"network", "rm", "ov1"}, "active endpoints")

	// A container removed on host 2 stops resolving and its entries go from hosts 1 and 3.
	mac2 := macOn(t, h2, "c2", "ov1")
	h2.MustCLI("rm", "-f", "c2")
	for _, h := range []*testenv.Host{h1, h3} {
		h := h
		waitUntil(t, 5*time.Second, "c2's entries gone from "+h.Underlay, func() bool {
			return !strings.Contains(fdb(t, h, id), mac2) && !strings.Contains(neigh(t, h, id), mac2)
		})
	}
	waitUntil(t, 5*time.Second, "c2 no longer resolving", func() bool { return len(resolves(t, h1, "c1", "c2")) == 0 })
	if got := resolves(t, h1, "c1", "web"); fmt.Sprint(got) != fmt.Sprint([]string{ip3}) {
		t.Errorf("web after c2 went: %v, want [%s]", got, ip3)
	}
}

// TestOverlayConcurrentRuns: runs on every host at once never share an address.
func TestOverlayConcurrentRuns(t *testing.T) {
	c := overlayCluster(t, "5")
	c.Hosts[0].MustCLI("network", "create", "-d", "overlay", "--subnet", "10.10.0.0/24", "ov2")
	for _, h := range c.Hosts[1:] {
		waitUntil(t, 10*time.Second, "ov2 on "+h.Underlay, func() bool { return strings.Contains(h.MustCLI("network", "ls"), "ov2") })
	}
	var wg sync.WaitGroup
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := c.Hosts[i%3]
			if _, e, code := h.CLI("run", "--rootfs", "/", "-d", "--name", fmt.Sprintf("r%d", i), "--network", "ov2", "busybox", "sleep", "3600"); code != 0 {
				t.Errorf("run r%d on %s: %s", i, h.Underlay, e)
			}
		}(i)
	}
	wg.Wait()
	seen := map[string]string{}
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("r%d", i)
		ip := ipOn(t, c.Hosts[i%3], name, "ov2")
		if other, dup := seen[ip]; dup {
			t.Errorf("%s and %s both got %s", name, other, ip)
		}
		seen[ip] = name
	}
	// A static --ip is honoured cluster-wide: taken on one host, refused on another.
	runSleeper(t, c.Hosts[0], "fixed", "--network", "ov2", "--ip", "10.10.0.200")
	expectRefused(t, c.Hosts[1], []string{"run", "--rootfs", "/", "-d", "--name", "fixed2", "--network", "ov2", "--ip", "10.10.0.200", "busybox", "sleep", "1"}, "in use")
	// A released address is not handed out again at once.
	c.Hosts[0].MustCLI("rm", "-f", "fixed")
	expectRefused(t, c.Hosts[2], []string{"run", "--rootfs", "/", "-d", "--name", "fixed3", "--network", "ov2", "--ip", "10.10.0.200", "busybox", "sleep", "1"}, "cooling down")

	// Once no host has an endpoint on it, removing the network on any host removes it from all.
	for i := 0; i < 30; i++ {
		c.Hosts[i%3].MustCLI("rm", "-f", fmt.Sprintf("r%d", i))
	}
	for _, h := range c.Hosts {
		h.CLI("rm", "-f", "fixed2", "fixed3")
	}
	c.Hosts[2].MustCLI("network", "rm", "ov2")
	for _, h := range c.Hosts {
		waitUntil(t, 5*time.Second, "ov2 gone from "+h.Underlay, func() bool { return !strings.Contains(h.MustCLI("network", "ls"), "ov2") })
	}
	if left := c.EtcdGet("/cnet/v1/"); len(left) != 3 {
		t.Errorf("etcd after the last network went: %v, want the three hosts' records only", left)
	}
}

// TestOverlayNeedsClusterStore: without --cluster-store, an overlay network is refused with a
// message naming the flags, and nothing changes.
func TestOverlayNeedsClusterStore(t *testing.T) {
	h := testenv.NewHost(t)
	before := state(t, h)
	expectRefused(t, h, []string{"network", "create", "-d", "overlay", "ov"}, "--cluster-store")
	if after := state(t, h); after != before {
		t.Errorf("a refused overlay create changed the host:\nbefore %s\nafter %s", before, after)
	}
}

// TestOverlayHostFaults: a host that dies is gone from the others within TTL + 5 s; a daemon
// SIGKILLed and restarted keeps its containers' addresses and registers them again; losing
// one etcd member of three changes nothing.
func TestOverlayHostFaults(t *testing.T) {
	c := overlayCluster(t, "5")
	h1, h2, h3 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	id := strings.TrimSpace(h1.MustCLI("network", "create", "-d", "overlay", "ov3"))
	for _, h := range c.Hosts[1:] {
		waitUntil(t, 10*time.Second, "ov3 on "+h.Underlay, func() bool { return strings.Contains(h.MustCLI("network", "ls"), "ov3") })
	}
	runSleeper(t, h1, "a1", "--network", "ov3")
	runSleeper(t, h2, "a2", "--network", "ov3")
	runSleeper(t, h3, "a3", "--network", "ov3")
	ip2, ip3 := ipOn(t, h2, "a2", "ov3"), ipOn(t, h3, "a3", "ov3")
	mac3 := macOn(t, h3, "a3", "ov3")
	waitUntil(t, 5*time.Second, "a3 resolving on host 1", func() bool { return len(resolves(t, h1, "a1", "a3")) == 1 })
	execPing(t, h1, "a1", "a3")

	// The daemon of host 2 is SIGKILLed and restarted: same address, pingable by name again.
	h2.KillDaemon()
	h2.StartDaemon()
	if got := ipOn(t, h2, "a2", "ov3"); got != ip2 {
		t.Errorf("a2's address after the daemon's restart: %s, want %s", got, ip2)
	}
	waitUntil(t, 10*time.Second, "a2 resolving on host 1 after host 2's restart", func() bool {
		return fmt.Sprint(resolves(t, h1, "a1", "a2")) == fmt.Sprint([]string{ip2})
	})
	execPing(t, h1, "a1", "a2")

	// One etcd member of three dies: overlay work goes on as before.
	c.KillMember(0)
	runSleeper(t, h2, "a4", "--network", "ov3")
	waitUntil(t, 10*time.Second, "a4 resolving on host 1 with one member down", func() bool { return len(resolves(t, h1, "a1", "a4")) == 1 })
	execPing(t, h1, "a1", "a4")
	c.StartMember(0)

	// Host 3 dies (daemon and namespace): within TTL (5 s) + 5 s its container's entries
	// and name are gone from host 1.
	c.KillHost(2)
	start := time.Now()
	waitUntil(t, 10*time.Second, "host 3's endpoint gone from host 1", func() bool {
		return !strings.Contains(fdb(t, h1, id), mac3) && !strings.Contains(neigh(t, h1, id), mac3)
	})
	t.Logf("host 3's endpoint left host 1's kernel %s after host 3 died", time.Since(start).Round(10*time.Millisecond))
	waitUntil(t, 5*time.Second, "a3 no longer resolving", func() bool { return len(resolves(t, h1, "a1", "a3")) == 0 })
	_ = ip3
}

// TestOverlayCutOff: a host cut off from etcd keeps its existing traffic, refuses new overlay
// work with a clear message and changes nothing, then converges when reconnected.
func TestOverlayCutOff(t *testing.T) {
	// The TTL is longer than the cut: the other hosts keep this host's endpoints as long as its
	// lease lives (a longer cut is the second part).
	c := overlayCluster(t, "15")
	h1, h2 := c.Hosts[0], c.Hosts[1]
	h1.MustCLI("network", "create", "-d", "overlay", "ov4")
	waitUntil(t, 10*time.Second, "ov4 on host 2", func() bool { return strings.Contains(h2.MustCLI("network", "ls"), "ov4") })
	runSleeper(t, h1, "b1", "--network", "ov4")
	runSleeper(t, h2, "b2", "--network", "ov4")
	waitUntil(t, 5*time.Second, "b2 resolving on host 1", func() bool { return len(resolves(t, h1, "b1", "b2")) == 1 })

	c.CutOff(h1)
	execPing(t, h1, "b1", "b2")
	before := state(t, h1)
	expectRefused(t, h1, []string{"run", "--rootfs", "/", "-d", "--name", "b3", "--network", "ov4", "busybox", "sleep", "3600"}, "cluster store")
	h1.CLI("rm", "-f", "b3") // as in Docker, a container that failed to start stays, created
	expectRefused(t, h1, []string{"network", "create", "-d", "overlay", "ov5"}, "cluster store")
	if after := state(t, h1); after != before {
		t.Errorf("refused overlay work changed host 1:\nbefore %s\nafter %s", before, after)
	}
	execPing(t, h1, "b1", "b2")
	execPing(t, h2, "b2", "b1")

	c.Reconnect(h1)
	waitUntil(t, 15*time.Second, "host 1 taking overlay work again", func() bool {
		_, _, code := h1.CLI("run", "--rootfs", "/", "-d", "--name", "b3", "--network", "ov4", "busybox", "sleep", "3600")
		if code != 0 {
			h1.CLI("rm", "-f", "b3") // created, not started: out of the way of the next try
		}
		return code == 0
	})
	waitUntil(t, 5*time.Second, "b3 resolving on host 2", func() bool { return len(resolves(t, h2, "b2", "b3")) == 1 })
	execPing(t, h2, "b2", "b3")
	execPing(t, h2, "b2", "b1")

	// A cut longer than the TTL: the other hosts drop host 1's endpoints (they cannot tell it
	// from a dead host), and host 1 registers them again under a new lease once back.
	c.CutOff(h1)
	waitUntil(t, 25*time.Second, "host 2 dropping b1 after host 1's lease expired", func() bool { return len(resolves(t, h2, "b2", "b1")) == 0 })
	c.Reconnect(h1)
	waitUntil(t, 15*time.Second, "b1 registered again and resolving on host 2", func() bool { return len(resolves(t, h2, "b2", "b1")) == 1 })
	execPing(t, h2, "b2", "b1")
	execPing(t, h1, "b3", "b2")
}

// TestOverlayEdges: containers on an overlay reach beyond the cluster through NAT on their own
// host, publish ports on their host, an --internal overlay reaches other hosts' containers and
// nothing else, and `network inspect --verbose` shows the peers with the store and the kernel
// in agreement, and flags a stale kernel entry.
func TestOverlayEdges(t *testing.T) {
	c := overlayCluster(t, "5")
	h1, h2 := c.Hosts[0], c.Hosts[1]
	id := strings.TrimSpace(h1.MustCLI("network", "create", "-d", "overlay", "--subnet", "10.20.0.0/24", "-o", "com.docker.network.driver.mtu=1400", "ove"))
	h1.MustCLI("network", "create", "-d", "overlay", "--internal", "ovi")
	for _, name := range []string{"ove", "ovi"} {
		waitUntil(t, 10*time.Second, name+" on host 2", func() bool { return strings.Contains(h2.MustCLI("network", "ls"), name) })
	}
	www := filepath.Join(h2.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served on host 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runSleeper(t, h1, "e1", "--network", "ove")
	h2.MustCLI("run", "--rootfs", "/", "-d", "--name", "web", "--network", "ove", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h", www)
	if mtu := strings.TrimSpace(h1.MustCLI("exec", "e1", "cat", "/sys/class/net/eth0/mtu")); mtu != "1400" {
		t.Errorf("e1's MTU on ove: %s, want the 1400 given", mtu)
	}

	// Out of the cluster: the router's far address, through host 1's NAT.
	execPing(t, h1, "e1", "172.31.1.1")
	// A published port of a container on host 2 answers at host 2's underlay address, from host 1.
	waitUntil(t, 5*time.Second, "web's published port from host 1", func() bool {
		out, err := httpGet(h1, "", h2.Underlay, "8080")
		return err == nil && strings.Contains(out, "served on host 2")
	})
	// Across hosts on the overlay, by name, and by a container's --hostname.
	waitUntil(t, 5*time.Second, "web resolving on host 1", func() bool { return len(resolves(t, h1, "e1", "web")) == 1 })
	runSleeper(t, h2, "named", "--network", "ove", "--hostname", "box2")
	waitUntil(t, 5*time.Second, "box2 resolving on host 1", func() bool {
		return fmt.Sprint(resolves(t, h1, "e1", "box2")) == fmt.Sprint([]string{ipOn(t, h2, "named", "ove")})
	})
	pid := strings.TrimSpace(h1.MustCLI("inspect", "-f", "{{.State.Pid}}", "e1"))
	if out, err := httpGet(h1, pid, ipOn(t, h2, "web", "ove"), "80"); err != nil || !strings.Contains(out, "served on host 2") {
		t.Errorf("e1 → web:80 across hosts: %v %s", err, out)
	}

	// --internal: other hosts' containers yes, the world no.
	runSleeper(t, h1, "i1", "--network", "ovi")
	runSleeper(t, h2, "i2", "--network", "ovi")
	waitUntil(t, 5*time.Second, "i2 resolving on host 1", func() bool { return len(resolves(t, h1, "i1", "i2")) == 1 })
	execPing(t, h1, "i1", "i2")
	if out, _, code := h1.CLI("exec", "i1", "busybox", "ping", "-c", "1", "-W", "1", "172.31.1.1"); code == 0 {
		t.Errorf("a container on an --internal overlay reached the router:\n%s", out)
	}

	// inspect --verbose: host 2 is a peer of ove, and every remote endpoint is "ok".
	var v []struct {
		Peers     []struct{ Name, IP string }
		Diagnosis []struct {
			Names                        []string
			IP, VTEP, KernelVTEP, Status string
		}
	}
	if err := json.Unmarshal([]byte(h1.MustCLI("network", "inspect", "--verbose", "ove")), &v); err != nil || len(v) != 1 {
		t.Fatalf("inspect --verbose ove: %v", err)
	}
	if len(v[0].Peers) != 1 || v[0].Peers[0].IP != h2.Underlay || len(v[0].Diagnosis) != 2 {
		t.Errorf("inspect --verbose ove on host 1: %+v", v[0])
	}
	for _, d := range v[0].Diagnosis { // web and named, both on host 2
		if d.Status != "ok" || d.KernelVTEP != h2.Underlay || (d.Names[0] != "web" && d.Names[0] != "named") {
			t.Errorf("inspect --verbose ove on host 1: %+v", d)
		}
	}
	// A stale entry made by hand is flagged (until the reconcile loop removes it).
	flagged := false
	for try := 0; try < 5 && !flagged; try++ {
		h1.MustRun("bridge", "fdb", "replace", "02:42:0a:14:00:63", "dev", "vx-"+id[:12], "dst", "172.31.1.99", "self", "permanent")
		flagged = strings.Contains(h1.MustCLI("network", "inspect", "--verbose", "ove"), "stale: in this host's kernel, not in the cluster store")
	}
	if !flagged {
		t.Error("inspect --verbose never flagged a stale FDB entry")
	}
	waitUntil(t, 5*time.Second, "the stale FDB entry removed by the reconcile loop", func() bool {
		return !strings.Contains(fdb(t, h1, id), "02:42:0a:14:00:63")
	})
}

// TestOverlayCrash kills host 2's daemon (SIGKILL) at every step where the cluster store and
// the host can disagree, restarts it, and checks across the cluster: every address claimed in
// etcd for a host belongs to a running container and every running container's address is
// claimed (a claim nothing holds is released by the reconcile loop), the endpoints in etcd
// are exactly the running containers', no address twice, and new work still works.
func TestOverlayCrash(t *testing.T) {
	c := testenv.NewCluster(t, testenv.ClusterOptions{Hosts: 2, TTL: "5"})
	h1, h2 := c.Hosts[0], c.Hosts[1]
	t.Cleanup(func() {
		for _, h := range c.Hosts {
			if ids, _, code := h.CLI("ps", "-aq"); code == 0 {
				for _, id := range strings.Fields(ids) {
					h.CLI("rm", "-f", id)
				}
			}
		}
		h1.CLI("network", "prune", "-f")
		waitUntil(t, 10*time.Second, "overlays gone from host 2", func() bool { return !strings.Contains(h2.MustCLI("network", "ls"), "overlay") })
	})
	id := strings.TrimSpace(h1.MustCLI("network", "create", "-d", "overlay", "ovc"))
	waitUntil(t, 10*time.Second, "ovc on host 2", func() bool { return strings.Contains(h2.MustCLI("network", "ls"), "ovc") })
	runSleeper(t, h1, "keeper", "--network", "ovc")
	for i, point := range faults.ClusterPoints {
		h2.StopDaemon()
		h2.StartDaemonEnv([]string{faults.Env + "=" + point})
		var op []string
		switch point {
		case "global-network-claimed":
			op = []string{"network", "create", "-d", "overlay", "ovnew"}
		case "endpoint-unplugged":
			runSleeper(t, h2, "leaver", "--network", "ovc")
			op = []string{"network", "disconnect", "ovc", "leaver"}
		default:
			op = []string{"run", "--rootfs", "/", "-d", "--name", fmt.Sprintf("victim%d", i), "--network", "ovc", "busybox", "sleep", "3600"}
		}
		if _, _, code := h2.CLI(op...); code == 0 {
			t.Fatalf("cnet %s succeeded: the daemon did not crash at %s", strings.Join(op, " "), point)
		}
		h2.WaitDaemonGone()
		h2.StartDaemon()
		if point == "global-network-claimed" {
			// Claimed before the crash: it exists everywhere after it, once.
			for _, h := range c.Hosts {
				waitUntil(t, 10*time.Second, "ovnew built on "+h.Underlay, func() bool { return strings.Contains(h.MustCLI("network", "ls"), "ovnew") })
			}
			expectRefused(t, h1, []string{"network", "create", "-d", "overlay", "ovnew"}, "already exists")
			h2.MustCLI("network", "rm", "ovnew")
		}
		checkClusterClaims(t, c, id, point)
		runSleeper(t, h2, fmt.Sprintf("after%d", i), "--network", "ovc")
		waitUntil(t, 10*time.Second, "a new container after the crash at "+point+" resolving on host 1", func() bool {
			return len(resolves(t, h1, "keeper", fmt.Sprintf("after%d", i))) == 1
		})
		execPing(t, h1, "keeper", fmt.Sprintf("after%d", i))
	}
}

// checkClusterClaims waits until etcd's address claims and endpoints of network id are exactly
// those of the running containers on the cluster's hosts, with no address twice.
func checkClusterClaims(t *testing.T, c *testenv.Cluster, id, point string) {
	t.Helper()
	var last string
	ok := func() bool {
		want := map[string]bool{} // addresses of running containers on id
		for _, h := range c.Hosts {
			for _, cid := range strings.Fields(h.MustCLI("ps", "-q", "--no-trunc")) {
				ip := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{with index .NetworkSettings.Networks \"ovc\"}}{{.IPAddress}}{{end}}", cid))
				if ip == "" {
					continue
				}
				if want[ip] {
					last = "address " + ip + " held twice"
					return false
				}
				want[ip] = true
			}
		}
		claimed := map[string]bool{}
		for k, v := range c.EtcdGet("/cnet/v1/addrs/" + id + "/") {
			if strings.HasPrefix(v, "host:") {
				claimed[k[strings.LastIndex(k, "/")+1:]] = true
			}
		}
		eps := map[string]bool{}
		for _, v := range c.EtcdGet("/cnet/v1/endpoints/" + id + "/") {
			var rec struct{ Address string }
			_ = json.Unmarshal([]byte(v), &rec)
			eps[strings.SplitN(rec.Address, "/", 2)[0]] = true
		}
		last = fmt.Sprintf("running %v, claimed %v, endpoints %v", want, claimed, eps)
		return fmt.Sprint(want) == fmt.Sprint(claimed) && fmt.Sprint(want) == fmt.Sprint(eps)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after a crash at %s, etcd and the hosts disagree: %s", point, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOverlayWithoutStoreAfterRestart: a daemon restarted without --cluster-store keeps
// serving, and its overlay containers keep their addresses and their traffic to each other on
// this host; overlay work waits for the flags to come back.
func TestOverlayWithoutStoreAfterRestart(t *testing.T) {
	c := testenv.NewCluster(t, testenv.ClusterOptions{Hosts: 1, TTL: "5"})
	h := c.Hosts[0]
	args := h.DaemonArgs()
	h.MustCLI("network", "create", "-d", "overlay", "ovr")
	runSleeper(t, h, "o1", "--network", "ovr")
	runSleeper(t, h, "o2", "--network", "ovr")
	ip1 := ipOn(t, h, "o1", "ovr")

	h.StopDaemon()
	h.WaitDaemonGone()
	h.SetDaemonArgs()
	h.StartDaemon()
	if got := ipOn(t, h, "o1", "ovr"); got != ip1 {
		t.Errorf("o1's address after a restart without the store: %s, want %s", got, ip1)
	}
	execPing(t, h, "o2", "o1")
	expectRefused(t, h, []string{"network", "create", "-d", "overlay", "ovr2"}, "--cluster-store")

	h.StopDaemon()
	h.WaitDaemonGone()
	h.SetDaemonArgs(args...)
	h.StartDaemon()
	runSleeper(t, h, "o3", "--network", "ovr")
	execPing(t, h, "o3", "o1")
	h.MustCLI("rm", "-f", "o1", "o2", "o3")
	h.MustCLI("network", "rm", "ovr")
}
