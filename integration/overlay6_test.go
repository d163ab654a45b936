package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestOverlayIPv6 is an overlay network with an IPv6 subnet beside its IPv4 one, across two
// hosts: each container gets an address of each family, unique across the hosts; they reach
// each other over IPv6 through the tunnel by address and by name (AAAA from the other host's
// record), with static IPv6 neighbour entries on the VXLAN device (its proxy answers neighbour
// solicitations, nothing is flooded); the refusals of what a cluster cannot share.
func TestOverlayIPv6(t *testing.T) {
	c := overlayClusterOpts(t, testenv.ClusterOptions{Hosts: 2, TTL: "5"})
	h1, h2 := c.Hosts[0], c.Hosts[1]
	expectRefused(t, h1, []string{"network", "create", "-d", "overlay", "--ipv6", "nosub"}, "needs an IPv6 --subnet")
	expectRefused(t, h1, []string{"network", "create", "-d", "overlay", "--ipv6", "--ipv4=false", "--subnet", "fd77::/64", "only6"}, "always has IPv4")
	expectRefused(t, h1, []string{"network", "create", "-d", "overlay", "--subnet", "fd77::/64", "noflag"}, "needs --ipv6")
	id := strings.TrimSpace(h1.MustCLI("network", "create", "-d", "overlay", "--ipv6", "--subnet", "fd77::/64", "ov6"))
	waitUntil(t, 10*time.Second, "ov6 on host 2", func() bool {
		out, _, _ := h2.CLI("network", "ls", "-q", "-f", "name=ov6")
		return strings.TrimSpace(out) == id[:12]
	})
	n := inspectNetwork(t, h2, "ov6")
	if !n.EnableIPv6 || len(n.IPAM.Config) != 2 || n.IPAM.Config[0].Subnet != "10.0.0.0/24" || n.IPAM.Config[1].Subnet != "fd77::/64" {
		t.Fatalf("inspect ov6 on host 2: EnableIPv6 %v IPAM %+v", n.EnableIPv6, n.IPAM.Config)
	}
	runSleeper(t, h1, "c1", "--network", "ov6")
	runSleeper(t, h2, "c2", "--network", "ov6")
	a1, a2 := ip6On(t, h1, "c1", "ov6"), ip6On(t, h2, "c2", "ov6")
	if a1 == "" || a2 == "" || a1 == a2 {
		t.Fatalf("IPv6 addresses across the hosts: %q and %q", a1, a2)
	}
	waitUntil(t, 10*time.Second, "c2's IPv6 neighbour entry on host 1", func() bool {
		return strings.Contains(neigh(t, h1, id), a2+" lladdr "+macOn(t, h2, "c2", "ov6")+" PERMANENT")
	})
	execPing(t, h1, "c1", a2)
	execPing(t, h2, "c2", a1)
	if out, errOut, code := h1.CLI("exec", "c1", "busybox", "ping", "-6", "-c", "1", "-W", "2", "c2"); code != 0 || !strings.Contains(out, a2) {
		t.Errorf("ping -6 c2 by name from host 1 (exit %d): %s%s", code, out, errOut)
	}
	if f := fdb(t, h1, id); strings.Contains(f, "00:00:00:00:00:00") {
		t.Errorf("host 1's FDB floods: %s", f)
	}
	// c2 leaves: its IPv6 neighbour entry goes from host 1 too.
	h2.MustCLI("rm", "-f", "c2")
	waitUntil(t, 10*time.Second, "c2's IPv6 neighbour entry gone from host 1", func() bool {
		return !strings.Contains(neigh(t, h1, id), a2)
	})
}
