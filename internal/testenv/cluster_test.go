package testenv

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCluster checks the multi-host harness itself, without cnet's cluster flags (its hosts
// run no daemon): the underlay routes between hosts, etcd is a healthy 3-member cluster that
// survives a member's death and takes it back, and CutOff, Reconnect and KillHost do what the
// integration tests rely on.
func TestCluster(t *testing.T) {
	RequireRoot(t)
	start := time.Now()
	c := NewCluster(t, ClusterOptions{Hosts: 3, TTL: "5", NoDaemon: true})
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	h1, h2, h3 := c.Hosts[0], c.Hosts[1], c.Hosts[2]
	for i, want := range []string{"192.168.1.11", "172.31.1.12", "192.168.1.13"} {
		if got := c.Hosts[i].Underlay; got != want {
			t.Errorf("host%d's underlay address is %s, want %s", i+1, got, want)
		}
	}
	if want := "etcd://10.99.0.11:2379,10.99.0.12:2379,10.99.0.13:2379"; c.StoreURL() != want {
		t.Errorf("StoreURL() = %s, want %s", c.StoreURL(), want)
	}
	args := strings.Join(h2.DaemonArgs(), " ")
	if want := "--cluster-store " + c.StoreURL() + " --cluster-advertise 172.31.1.12 --cluster-store-opt discovery.ttl=5"; args != want {
		t.Errorf("host2's daemon args: %q, want %q", args, want)
	}
	// Hermetic: the machine's own namespace has no address on any of the test's subnets.
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		for _, subnet := range []string{subnetA + ".", subnetB + ".", subnetStore + "."} {
			if strings.HasPrefix(a.String(), subnet) {
				t.Errorf("the machine's namespace has %s", a)
			}
		}
	}

	ping := func(from, to *Host, wait string) error {
		_, err := from.RunTimeout(5*time.Second, "busybox", "ping", "-c1", "-W"+wait, to.Underlay)
		return err
	}
	// reaches allows a few echoes: on a loaded CI machine one can take longer than its wait.
	reaches := func(from, to *Host) (err error) {
		for try := 0; try < 3; try++ {
			if err = ping(from, to, "2"); err == nil {
				return nil
			}
		}
		return err
	}
	if err := reaches(h1, h2); err != nil {
		t.Errorf("host1 does not reach host2 across the router: %v", err)
	}
	if err := reaches(h1, h3); err != nil {
		t.Errorf("host1 does not reach host3 on their segment: %v", err)
	}
	// host1 and host3 share the router's bridge: host3's MAC is learnt directly, no hop.
	if out := h1.MustRun("ip", "neigh", "show", h3.Underlay); !strings.Contains(out, "lladdr") {
		t.Errorf("host1 has no neighbour entry for host3: %q", out)
	}

	if names := c.EtcdMembers(); !slices.Equal(names, []string{"etcd1", "etcd2", "etcd3"}) {
		slices.Sort(names)
		if !slices.Equal(names, []string{"etcd1", "etcd2", "etcd3"}) {
			t.Errorf("etcd's members: %v", names)
		}
	}
	c.EtcdPut("/test/a", "1")
	c.KillMember(0)
	c.WaitHealthy(5 * time.Second)
	c.EtcdPut("/test/b", "2")
	if got := c.EtcdGet("/test/"); len(got) != 2 || got["/test/a"] != "1" || got["/test/b"] != "2" {
		t.Errorf("after etcd1 died, /test/ holds %v", got)
	}
	if err := c.ReachesEtcd(h1, 5*time.Second); err != nil {
		t.Errorf("host1 does not reach etcd: %v", err)
	}

	c.CutOff(h1)
	if err := c.ReachesEtcd(h1, time.Second); err == nil {
		t.Error("host1 still reaches etcd after CutOff")
	}
	if err := reaches(h1, h2); err != nil {
		t.Errorf("host1 cut off from etcd no longer reaches host2: %v", err)
	}
	if err := c.ReachesEtcd(h2, 5*time.Second); err != nil {
		t.Errorf("host2 lost etcd when host1 was cut off: %v", err)
	}
	c.Reconnect(h1)
	if err := c.ReachesEtcd(h1, 5*time.Second); err != nil {
		t.Errorf("host1 does not reach etcd after Reconnect: %v", err)
	}

	c.StartMember(0)
	c.KillMember(1) // etcd1 must be serving again for the cluster to keep a quorum
	c.WaitHealthy(5 * time.Second)
	if got := c.EtcdGet("/test/"); len(got) != 2 {
		t.Errorf("with etcd1 back and etcd2 dead, /test/ holds %v", got)
	}

	c.KillHost(2)
	if err := ping(h1, h3, "1"); err == nil {
		t.Error("host3 still answers after KillHost")
	}
	if err := reaches(h1, h2); err != nil {
		t.Errorf("host1 lost host2 when host3 died: %v", err)
	}
}
