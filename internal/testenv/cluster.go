package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The underlay of a cluster, as in the seed topology: hosts alternate between two subnets
// joined by a router, so that some pairs of hosts share an L2 segment and others are routed;
// the etcd members sit on a third subnet behind the same router. Every address lives in
// namespaces the test made: the router's, the hosts', the members'.
const (
	subnetA     = "192.168.1"
	subnetB     = "172.31.1"
	subnetStore = "10.99.0"
	// StoreSubnet is the subnet of the etcd members, which CutOff makes unreachable.
	StoreSubnet = subnetStore + ".0/24"
	// UnderlayLink is the name of every host's (and member's) underlay interface.
	UnderlayLink = "ul0"
	// cutoffTable is the nftables table CutOff adds to a host (removed by Reconnect).
	cutoffTable = "testenv_cutoff"
)

// ClusterOptions say how NewCluster makes a cluster.
type ClusterOptions struct {
	Hosts   int // cnet hosts, at least 1
	Members int // etcd members; 3 if 0
	// TTL is the daemons' discovery.ttl (--cluster-store-opt discovery.ttl=TTL); none if "".
	TTL string
	// DaemonArgs are more args for every daemon start, after the cluster flags.
	DaemonArgs []string
	// NoDaemon makes the hosts without starting their daemons; h.StartDaemon() later starts
	// one with the cluster flags.
	NoDaemon bool
}

// Cluster is several cnet hosts and an etcd cluster on one machine, joined by a router.
type Cluster struct {
	t       testing.TB
	Router  *BareHost
	Hosts   []*Host
	Members []*Member
	token   string
	mu      sync.Mutex
	cut     map[*Host]bool // hosts CutOff left without etcd
}

// NewCluster makes a router, an etcd cluster (healthy before it returns) and opts.Hosts hosts
// whose daemons run with the cluster flags (see DaemonArgs). Everything is removed when the
// test ends, also when it failed half-way.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	RequireRoot(t)
	if _, err := os.Stat(etcdBin); err != nil {
		t.Fatalf("no etcd at %s (Debian's etcd-server package, which .ci/run installs): %v", etcdBin, err)
	}
	if opts.Members == 0 {
		opts.Members = 3
	}
	if opts.Hosts < 1 || opts.Hosts > 200 || opts.Members > 200 {
		t.Fatalf("NewCluster: %d hosts, %d members: want 1-200 of each", opts.Hosts, opts.Members)
	}
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	c := &Cluster{t: t, token: "cnet-test-" + hex.EncodeToString(token), cut: map[*Host]bool{}}

	// The router first and the members next: cleanups run in reverse, so the hosts' cleanup
	// checks (whose daemons may talk to etcd) run while etcd and the underlay still exist.
	c.Router = NewBareHost(t, "cnet-router-")
	r := c.Router
	r.MustRun("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	for i, subnet := range []string{subnetA, subnetB, subnetStore} {
		br := bridgeName(subnet)
		// A fixed MAC: a bridge without one takes its lowest port's, so deleting a host's
		// port (KillHost) would change the router's MAC under the other hosts' ARP caches
		// and cut them off for as long as their entries stay REACHABLE.
		r.MustRun("ip", "link", "add", br, "address", fmt.Sprintf("02:00:00:00:01:%02x", i+1), "type", "bridge")
		r.MustRun("ip", "addr", "add", subnet+".1/24", "dev", br)
		r.MustRun("ip", "link", "set", br, "up")
	}
	for i := 1; i <= opts.Members; i++ {
		m := &Member{BareHost: NewBareHost(t, "cnet-etcd-"), Name: "etcd" + strconv.Itoa(i),
			IP: fmt.Sprintf("%s.%d", subnetStore, 10+i), c: c}
		c.wire(m.BareHost, "e"+strconv.Itoa(i), m.IP, subnetStore)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.start("new")
	}
	for i := 1; i <= opts.Hosts; i++ {
		h := NewHostWith(t, HostOptions{NoDaemon: true, Links: []string{UnderlayLink}})
		subnet := subnetA
		if i%2 == 0 {
			subnet = subnetB
		}
		h.Underlay = fmt.Sprintf("%s.%d", subnet, 10+i)
		c.wire(h.BareHost, "h"+strconv.Itoa(i), h.Underlay, subnet)
		h.SetDaemonArgs(append(c.DaemonArgs(h, opts.TTL), opts.DaemonArgs...)...)
		c.Hosts = append(c.Hosts, h)
	}
	t.Cleanup(c.cleanup)
	c.WaitHealthy(20 * time.Second)
	if !opts.NoDaemon {
		for _, h := range c.Hosts {
			h.StartDaemon()
		}
	}
	return c
}

// bridgeName names the router's bridge for a subnet ("ul192", "ul172", "ul10").
func bridgeName(subnet string) string { return "ul" + strings.SplitN(subnet, ".", 2)[0] }

// wire gives b an underlay link "ul0" with address ip in subnet (a /24) and a default route
// through the router, whose end of the veth pair (named peer) is a port of the subnet's
// bridge. The link is made in the router and its other end moved into b at once, so nothing
// ever exists in the machine's own namespace.
func (c *Cluster) wire(b *BareHost, peer, ip, subnet string) {
	c.t.Helper()
	if err := c.Router.runNet("ip", "link", "add", peer, "type", "veth", "peer", "name", UnderlayLink, "netns", strconv.Itoa(b.pid)); err != nil {
		c.t.Fatal(err)
	}
	c.Router.MustRun("ip", "link", "set", peer, "master", bridgeName(subnet), "up")
	b.MustRun("ip", "addr", "add", ip+"/24", "dev", UnderlayLink)
	b.MustRun("ip", "link", "set", UnderlayLink, "up")
	b.MustRun("ip", "route", "add", "default", "via", subnet+".1")
}

// DaemonArgs returns the cluster flags of h's daemon: the store, h's underlay address to
// advertise, and the discovery TTL if ttl is not "".
func (c *Cluster) DaemonArgs(h *Host, ttl string) []string {
	args := []string{"--cluster-store", c.StoreURL(), "--cluster-advertise", h.Underlay}
	if ttl != "" {
		args = append(args, "--cluster-store-opt", "discovery.ttl="+ttl)
	}
	return args
}

// StoreURL returns the --cluster-store URL: etcd://10.99.0.11:2379,10.99.0.12:2379,...
func (c *Cluster) StoreURL() string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.IP+":2379")
	}
	return "etcd://" + strings.Join(eps, ",")
}

// hostIndex returns h's index in c.Hosts, failing the test for a host of another cluster.
func (c *Cluster) hostIndex(h *Host) int {
	c.t.Helper()
	for i, x := range c.Hosts {
		if x == h {
			return i
		}
	}
	c.t.Fatalf("host %s is not in this cluster", h.Dir)
	return -1
}

// CutOff makes etcd unreachable from h (both ways: packets to and from the store subnet are
// dropped, so connections hang as in a partition rather than fail at once) while h still
// reaches the other hosts. It is an nftables table of the harness's own in h's namespace,
// which cnet's firewall (table ip cnet) neither sees nor touches.
func (c *Cluster) CutOff(h *Host) {
	c.t.Helper()
	c.hostIndex(h)
	rules := fmt.Sprintf(`table inet %[1]s {
	chain out { type filter hook output priority -300; ip daddr %[2]s drop; }
	chain in { type filter hook input priority -300; ip saddr %[2]s drop; }
}
`, cutoffTable, StoreSubnet)
	cmd := h.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("cutting %s off etcd: %v\n%s", h.Underlay, err, out)
	}
	c.mu.Lock()
	c.cut[h] = true
	c.mu.Unlock()
}

// Reconnect undoes CutOff.
func (c *Cluster) Reconnect(h *Host) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.cut[h] {
		c.t.Fatalf("Reconnect: host %s was not cut off", h.Underlay)
	}
	delete(c.cut, h)
	if out, err := h.Run("nft", "delete", "table", "inet", cutoffTable); err != nil {
		c.t.Fatalf("reconnecting %s to etcd: %v\n%s", h.Underlay, err, out)
	}
}

// ReachesEtcd returns nil if h can read /health from the first running member within
// timeout; a host that is cut off finds out only when the timeout passes. (busybox wget has
// no usable timeout of its own: -T crashes Debian's 1.35 static build; the harness kills it.)
func (c *Cluster) ReachesEtcd(h *Host, timeout time.Duration) error {
	for _, m := range c.Members {
		if m.Running() {
			out, err := h.RunTimeout(timeout, "busybox", "wget", "-qO-", m.ClientURL()+"/health")
			if err != nil {
				return fmt.Errorf("%s from %s: %v: %s", m.Name, h.Underlay, err, strings.TrimSpace(out))
			}
			return nil
		}
	}
	return errors.New("no etcd member is running")
}

// KillHost kills c.Hosts[i] as if the machine died: its daemon, its containers and its
// network namespace. Its underlay link goes at once (the router's end is deleted first), so
// it stops answering anything, VXLAN included. Its cleanup then checks nothing.
func (c *Cluster) KillHost(i int) {
	c.t.Helper()
	h := c.Hosts[i]
	if h.Dead() {
		c.t.Fatalf("KillHost(%d): already killed", i)
	}
	if err := c.Router.runNet("ip", "link", "del", "h"+strconv.Itoa(i+1)); err != nil {
		c.t.Fatalf("KillHost(%d): %v", i, err)
	}
	h.Kill()
	c.mu.Lock()
	delete(c.cut, h)
	c.mu.Unlock()
}

// cleanup reconnects the hosts still cut off, so that their cleanup checks may reach etcd,
// and shows the members' logs if the test failed.
func (c *Cluster) cleanup() {
	c.mu.Lock()
	for h := range c.cut {
		if !h.Dead() {
			_, _ = h.Run("nft", "delete", "table", "inet", cutoffTable)
		}
	}
	c.cut = map[*Host]bool{}
	c.mu.Unlock()
	if c.t.Failed() {
		for _, m := range c.Members {
			c.t.Logf("%s (%s) log:\n%s", m.Name, m.IP, m.Log())
		}
	}
}
