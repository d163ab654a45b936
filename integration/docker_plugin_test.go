package integration

import (
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/dockerplugin"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// newDockerWithCnet is a test host whose cnet daemon serves dockerd (a private one, see
// newDockerd) as its network and IPAM plugin, at the socket dockerd discovers plugins by. The
// daemon restarts once dockerd's harness has put a tmpfs over the host's /run, so that the
// socket is on it.
func newDockerWithCnet(t *testing.T) (*testenv.Host, *dockerd) {
	t.Helper()
	h := testenv.NewHost(t)
	return h, dockerOn(t, h)
}

// dockerOn starts a private dockerd in h and restarts h's cnet daemon as its plugin, keeping
// the daemon's other flags (a cluster host's among them).
func dockerOn(t *testing.T, h *testenv.Host) *dockerd {
	t.Helper()
	dk := newDockerd(t, h)
	h.StopDaemon()
	h.WaitDaemonGone()
	h.SetDaemonArgs(append(h.DaemonArgs(), "--docker-plugin="+dockerplugin.SocketPath)...)
	h.StartDaemon()
	dk.loadBusybox()
	return dk
}

// dockerIP is a Docker container's address on a Docker network.
func dockerIP(t *testing.T, dk *dockerd, container, network string) string {
	t.Helper()
	return strings.TrimSpace(dk.mustRun("inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, container))
}

// TestDockerPlugin is the issue's user story: `docker network create -d cnet --ipam-driver
// cnet` makes a cnet network; a Docker container on it and a cnet container ping each other
// (one bridge, one firewall); the Docker container's -p 8080:80 answers from another host
// through cnet's nftables with no docker-proxy; removing the container and the network leaves
// no veth, bridge or nft element.
func TestDockerPlugin(t *testing.T) {
	h, dk := newDockerWithCnet(t)
	seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")

	id := strings.TrimSpace(dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "--subnet", "10.86.0.0/24", "dnet"))
	cnetName := "docker-" + id[:12]
	n := inspectNetwork(t, h, cnetName)
	if n.Driver != "bridge" || len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "10.86.0.0/24" || n.IPAM.Config[0].Gateway != "10.86.0.1" {
		t.Fatalf("cnet's network for Docker's dnet: %+v", n)
	}
	runSleeper(t, h, "c1", "--network", cnetName)
	c1IP := ipOn(t, h, "c1", cnetName)

	dk.mustRun("run", "-d", "--name", "d1", "--network", "dnet", "-p", "8080:80", dockerBusybox, "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
	d1IP := dockerIP(t, dk, "d1", "dnet")
	if !strings.HasPrefix(d1IP, "10.86.0.") || d1IP == c1IP {
		t.Fatalf("d1 got %q from cnet's IPAM (c1 has %s)", d1IP, c1IP)
	}
	if out := dk.mustRun("exec", "d1", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, d1IP+"/24") {
		t.Errorf("d1's eth0 (moved in by dockerd) lacks %s: %s", d1IP, out)
	}
	if out, err := dk.run("exec", "d1", "busybox", "ping", "-c1", "-W2", c1IP); err != nil {
		t.Errorf("the Docker container cannot ping the cnet container: %v\n%s", err, out)
	}
	execPing(t, h, "c1", d1IP)
	found := false
	for _, e := range inspectNetwork(t, h, cnetName).Containers {
		found = found || strings.HasPrefix(e.IPv4Address, d1IP+"/")
	}
	if !found {
		t.Errorf("cnet network inspect does not list the Docker container's endpoint: %+v", inspectNetwork(t, h, cnetName).Containers)
	}

	// The published port, from a client host, through cnet's DNAT.
	waitFor(t, "d1's published port from the client host", func() bool {
		out, err := httpGet(h, seg.pid, "10.99.0.1", "8080")
		return err == nil && strings.Contains(out, "served by the busybox image")
	})
	if out, err := h.Run("sh", "-c", "busybox ps -o comm | grep -c docker-proxy || true"); strings.TrimSpace(out) != "0" {
		t.Errorf("a docker-proxy runs for the published port (%v): %s", err, out)
	}
	if ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any"); !strings.Contains(ports, "8080") {
		t.Errorf("port 8080 is not in cnet's DNAT map:\n%s", ports)
	}

	dk.mustRun("rm", "-f", "d1")
	if n := inspectNetwork(t, h, cnetName); len(n.Containers) != 1 {
		t.Errorf("after docker rm the network holds %d endpoints, want c1's only: %+v", len(n.Containers), n.Containers)
	}
	if ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any"); strings.Contains(ports, "8080") {
		t.Errorf("port 8080 is still in cnet's DNAT map after docker rm:\n%s", ports)
	}
	if veths := countVeths(h.MustRun("ip", "-o", "link", "show")); veths != 1 {
		t.Errorf("%d veths after docker rm, want c1's only", veths)
	}
	// Its address is free again.
	dk.mustRun("run", "-d", "--name", "d2", "--network", "dnet", "--ip", d1IP, dockerBusybox, "busybox", "sleep", "3600")
	dk.mustRun("rm", "-f", "d2")

	h.MustCLI("rm", "-f", "c1")
	bridge := "br-" + n.ID[:12]
	if rules := h.MustRun("nft", "list", "ruleset"); !strings.Contains(rules, bridge) {
		t.Fatalf("the firewall never had the network's bridge %s, so its absence below proves nothing:\n%s", bridge, rules)
	}
	dk.mustRun("network", "rm", "dnet")
	if rules := h.MustRun("nft", "list", "ruleset"); strings.Contains(rules, bridge) {
		t.Errorf("docker network rm left nft elements of %s:\n%s", bridge, rules)
	}
	if out, _, code := h.CLI("network", "inspect", cnetName); code == 0 {
		t.Errorf("cnet's network is still there after docker network rm:\n%s", out)
	}
	if links := h.MustRun("ip", "-o", "link", "show"); strings.Contains(links, "br-") || countVeths(links) != 0 {
		t.Errorf("docker network rm left links behind:\n%s", links)
	}
}

// TestDockerPluginRestarts: either daemon restarted or SIGKILLed with a Docker container
// running on a cnet network with a published port. A cnet restart keeps the container's
// interface, address and port; a dockerd restart stops the container (no --live-restore) and
// its endpoint goes with it; after a dockerd crash its restart cleans up through cnet. A
// `docker run` while cnet is down fails and succeeds once cnet is back. Each ends with the
// container removed and nothing of it left in cnet: endpoint, veth, nft element, address.
func TestDockerPluginRestarts(t *testing.T) {
	for _, tc := range []struct {
		name string
		// restart acts on the running d1; running says whether d1 should still be running,
		// reachable with its port, afterwards.
		restart func(t *testing.T, h *testenv.Host, dk *dockerd)
		running bool
	}{
		{"cnet restarted", func(t *testing.T, h *testenv.Host, _ *dockerd) {
			h.StopDaemon()
			h.WaitDaemonGone()
			h.StartDaemon()
		}, true},
		{"cnet killed", func(t *testing.T, h *testenv.Host, _ *dockerd) {
			h.KillDaemon()
			h.WaitDaemonGone()
			h.StartDaemon()
		}, true},
		{"dockerd restarted", func(t *testing.T, _ *testenv.Host, dk *dockerd) {
			dk.stop()
			dk.start()
		}, false},
		{"dockerd killed", func(t *testing.T, _ *testenv.Host, dk *dockerd) {
			dk.kill()
			dk.start()
		}, false},
		{"cnet down during docker run", func(t *testing.T, h *testenv.Host, dk *dockerd) {
			dk.mustRun("rm", "-f", "d1")
			h.StopDaemon()
			h.WaitDaemonGone()
			if out, err := dk.run("run", "-d", "--name", "d3", "--network", "dnet", dockerBusybox, "busybox", "sleep", "3600"); err == nil {
				t.Errorf("docker run on a cnet network succeeded with cnet down:\n%s", out)
			} else if !strings.Contains(out+err.Error(), "cnet") {
				t.Errorf("docker run with cnet down fails without naming the plugin: %v\n%s", err, out)
			}
			dk.run("rm", "-f", "d3")
			h.StartDaemon()
			dk.mustRun("run", "-d", "--name", "d1", "--network", "dnet", "-p", "8080:80", dockerBusybox, "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, dk := newDockerWithCnet(t)
			seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
			h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
			id := strings.TrimSpace(dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "--subnet", "10.87.0.0/24", "dnet"))
			cnetName := "docker-" + id[:12]
			runSleeper(t, h, "c1", "--network", cnetName)
			// --stop-timeout 1: httpd as PID 1 ignores SIGTERM, and dockerd's stop would wait 10 s.
			dk.mustRun("run", "-d", "--name", "d1", "--network", "dnet", "--stop-timeout", "1", "-p", "8080:80", dockerBusybox, "busybox", "httpd", "-f", "-p", "80", "-h", "/www")

			tc.restart(t, h, dk)

			if tc.running {
				d1IP := dockerIP(t, dk, "d1", "dnet")
				execPing(t, h, "c1", d1IP)
				waitFor(t, "d1's published port from the client host", func() bool {
					out, err := httpGet(h, seg.pid, "10.99.0.1", "8080")
					return err == nil && strings.Contains(out, "served by the busybox image")
				})
			} else if out := dk.mustRun("ps", "-q"); out != "" {
				t.Errorf("d1 still runs after dockerd's restart without --live-restore: %s", out)
			}
			d1IP := dockerIP(t, dk, "d1", "dnet")
			dk.mustRun("rm", "-f", "d1")
			checkDockerClean(t, h, dk, cnetName)
			if d1IP != "" {
				// d1's address is free again.
				dk.mustRun("run", "-d", "--name", "d2", "--network", "dnet", "--ip", d1IP, dockerBusybox, "busybox", "sleep", "3600")
				dk.mustRun("rm", "-f", "d2")
			}
			h.MustCLI("rm", "-f", "c1")
			dk.mustRun("network", "rm", "dnet")
		})
	}
}

// checkDockerClean checks that the cnet network made for a Docker network holds c1 alone, with
// c1's veth the only one and no published port left.
func checkDockerClean(t *testing.T, h *testenv.Host, dk *dockerd, cnetName string) {
	t.Helper()
	if n := inspectNetwork(t, h, cnetName); len(n.Containers) != 1 {
		t.Errorf("%s holds %d endpoints, want c1's only: %+v", cnetName, len(n.Containers), n.Containers)
	}
	if veths := countVeths(h.MustRun("ip", "-o", "link", "show")); veths != 1 {
		t.Errorf("%d veths, want c1's only:\n%s", veths, h.MustRun("ip", "-o", "link", "show"))
	}
	if ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any"); strings.Contains(ports, "8080") {
		t.Errorf("port 8080 is still in cnet's DNAT map:\n%s", ports)
	}
}

// TestDockerPluginOptions: `docker network create -o` options reach cnet's bridge driver
// (bridge name, MTU, inter-container traffic), --internal gives no way out, and bad input is
// refused with cnet's own message and leaves nothing: a bad option, and a pool from Docker's
// IPAM instead of cnet's.
func TestDockerPluginOptions(t *testing.T) {
	h, dk := newDockerWithCnet(t)
	dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "--subnet", "10.88.0.0/24",
		"-o", "com.docker.network.bridge.name=dkbr0", "-o", "com.docker.network.driver.mtu=1400",
		"-o", "com.docker.network.bridge.enable_icc=false", "onet")
	h.AllowLinks("dkbr0")
	if link := h.MustRun("ip", "-o", "link", "show", "dkbr0"); !strings.Contains(link, "mtu 1400") {
		t.Errorf("the bridge named by -o com.docker.network.bridge.name lacks the MTU of -o com.docker.network.driver.mtu: %s", link)
	}
	for _, name := range []string{"o1", "o2"} {
		dk.mustRun("run", "-d", "--name", name, "--network", "onet", "--stop-timeout", "1", dockerBusybox, "busybox", "sleep", "3600")
	}
	if out := dk.mustRun("exec", "o1", "busybox", "ip", "-o", "link", "show", "eth0"); !strings.Contains(out, "mtu 1400") {
		t.Errorf("o1's eth0 lacks the network's MTU: %s", out)
	}
	if out, err := dk.run("exec", "o1", "busybox", "ping", "-c1", "-W1", dockerIP(t, dk, "o2", "onet")); err == nil {
		t.Errorf("o1 reached o2 on a network with enable_icc=false:\n%s", out)
	}

	dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "--internal", "inet")
	dk.mustRun("run", "-d", "--name", "i1", "--network", "inet", "--stop-timeout", "1", dockerBusybox, "busybox", "sleep", "3600")
	if routes := dk.mustRun("exec", "i1", "busybox", "ip", "route"); strings.Contains(routes, "default") {
		t.Errorf("a container on an --internal network has a default route:\n%s", routes)
	}
	if links := dk.mustRun("exec", "i1", "busybox", "ip", "-o", "link"); strings.Count(links, ": eth") != 1 {
		t.Errorf("a container on an --internal network got more than cnet's interface (a docker_gwbridge?):\n%s", links)
	}

	before := h.MustCLI("network", "ls", "-q")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-d", "cnet", "--ipam-driver", "cnet", "-o", "com.docker.network.driver.mtu=abc", "bad1"}, "com.docker.network.driver.mtu"},
		{[]string{"-d", "cnet", "bad2"}, "--ipam-driver cnet"},
	} {
		out, err := dk.run(append([]string{"network", "create"}, tc.args...)...)
		if err == nil {
			t.Errorf("docker network create %v succeeded:\n%s", tc.args, out)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("docker network create %v: %v; want a message naming %q", tc.args, err, tc.want)
		}
	}
	if after := h.MustCLI("network", "ls", "-q"); after != before {
		t.Errorf("refused networks changed cnet's networks:\nbefore %s\nafter %s", before, after)
	}
	// The refused networks' pools were given back: their default subnets are free again.
	dk.mustRun("network", "create", "-d", "cnet", "--ipam-driver", "cnet", "again")

	dk.mustRun("rm", "-f", "o1", "o2", "i1")
	dk.mustRun("network", "rm", "onet", "inet", "again")
}
