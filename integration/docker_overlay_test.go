package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestDockerPluginOverlay: two hosts, each with its own dockerd, and a cnet overlay network
// created once on the first. On each host `docker network create -d cnet --ipam-driver cnet
// --ipam-opt cnet.network=ovnet --subnet SUBNET` makes a Docker network that is another name of it: the two
// dockerds' containers get distinct addresses from the cluster-wide IPAM and reach each other
// and a cnet container across the router. Removing the Docker networks leaves the overlay,
// which its creator removes once nothing is on it.
func TestDockerPluginOverlay(t *testing.T) {
	c := overlayClusterOpts(t, testenv.ClusterOptions{Hosts: 2, TTL: "5"})
	h1, h2 := c.Hosts[0], c.Hosts[1]
	h1.MustCLI("network", "create", "-d", "overlay", "ovnet")
	waitUntil(t, 10*time.Second, "ovnet on host 2", func() bool {
		_, _, code := h2.CLI("network", "inspect", "ovnet")
		return code == 0
	})
	subnet := inspectNetwork(t, h1, "ovnet").IPAM.Config[0].Subnet
	dks := []*dockerd{dockerOn(t, h1), dockerOn(t, h2)}
	for i, dk := range dks {
		dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "--ipam-opt", "cnet.network=ovnet", "--subnet", subnet, "dov")
		dk.mustRun("run", "-d", "--name", "d"+itoa(i+1), "--network", "dov", "--stop-timeout", "1", dockerBusybox, "busybox", "sleep", "3600")
	}
	runSleeper(t, h2, "c2", "--network", "ovnet")
	d1, d2, c2 := dockerIP(t, dks[0], "d1", "dov"), dockerIP(t, dks[1], "d2", "dov"), ipOn(t, h2, "c2", "ovnet")
	if len(map[string]bool{d1: true, d2: true, c2: true}) != 3 || !strings.HasPrefix(d1, "10.0.0.") {
		t.Fatalf("addresses on the overlay are not distinct ones of its subnet: d1 %s, d2 %s, c2 %s", d1, d2, c2)
	}
	for _, p := range []struct {
		dk       *dockerd
		from, to string
	}{{dks[0], "d1", d2}, {dks[1], "d2", d1}, {dks[0], "d1", c2}} {
		waitUntil(t, 10*time.Second, p.from+" reaching "+p.to+" across hosts", func() bool {
			_, err := p.dk.run("exec", p.from, "busybox", "ping", "-c1", "-W1", p.to)
			return err == nil
		})
	}
	execPing(t, h2, "c2", d1)

	// A bound network's options are the cnet network's: -o is refused, and so is another
	// subnet or none (dockerd would check a pool it did not name against the host's routes,
	// find the network's own, and ask again for ever).
	for _, args := range [][]string{
		{"--subnet", subnet, "-o", "com.docker.network.driver.mtu=1400"},
		{"--subnet", "10.0.9.0/24"},
		{},
	} {
		full := append([]string{"network", "create", "-d", "cnet", "--ipam-driver", "cnet", "--ipam-opt", "cnet.network=ovnet"}, args...)
		if out, err := dks[0].run(append(full, "dbad")...); err == nil {
			t.Errorf("docker network create %v bound to ovnet succeeded:\n%s", args, out)
		}
	}

	for i, dk := range dks {
		dk.mustRun("rm", "-f", "d"+itoa(i+1))
		dk.mustRun("network", "rm", "dov")
	}
	h2.MustCLI("rm", "-f", "c2")
	if _, _, code := h2.CLI("network", "inspect", "ovnet"); code != 0 {
		t.Fatalf("docker network rm of a bound network removed the cnet network")
	}
	waitUntil(t, 10*time.Second, "ovnet removable once every endpoint is gone", func() bool {
		_, _, code := h1.CLI("network", "rm", "ovnet")
		return code == 0
	})
}
