package integration

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

func TestDefaultNetworks(t *testing.T) {
	h := testenv.NewHost(t)
	out := h.MustCLI("network", "ls")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !regexp.MustCompile(`^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$`).MatchString(lines[0]) {
		t.Fatalf("network ls:\n%s", out)
	}
	want := []struct{ name, driver string }{{"bridge", "bridge"}, {"host", "host"}, {"none", "null"}}
	for i, w := range want {
		re := regexp.MustCompile(fmt.Sprintf(`^[0-9a-f]{12}\s+%s\s+%s\s+local$`, w.name, w.driver))
		if !re.MatchString(lines[i+1]) {
			t.Errorf("network ls row %d = %q, want %s/%s/local with a 12-hex id", i+1, lines[i+1], w.name, w.driver)
		}
	}

	n := inspectNetwork(t, h, "bridge")
	if n.Driver != "bridge" || n.Scope != "local" || n.IPAM.Driver != "default" || len(n.ID) != 64 {
		t.Errorf("inspect bridge: %+v", n)
	}
	if len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "172.17.0.0/16" || n.IPAM.Config[0].Gateway != "172.17.0.1" {
		t.Errorf("bridge IPAM config = %+v, want 172.17.0.0/16 via 172.17.0.1", n.IPAM.Config)
	}
	wantOpts := map[string]string{
		"com.docker.network.bridge.default_bridge":       "true",
		"com.docker.network.bridge.enable_icc":           "true",
		"com.docker.network.bridge.enable_ip_masquerade": "true",
		"com.docker.network.bridge.host_binding_ipv4":    "0.0.0.0",
		"com.docker.network.bridge.name":                 "cnet0",
		"com.docker.network.driver.mtu":                  "1500",
	}
	for k, v := range wantOpts {
		if n.Options[k] != v {
			t.Errorf("bridge option %s = %q, want %q", k, n.Options[k], v)
		}
	}
	// The seed's inspect output: a JSON array indented with 4 spaces, fields in Docker's order.
	raw := h.MustCLI("network", "inspect", "bridge")
	for _, frag := range []string{"[\n    {\n        \"Name\": \"bridge\",\n        \"Id\": ", "\"ConfigFrom\": {\n            \"Network\": \"\"\n        },", "\"Containers\": {},", "\"Labels\": {}"} {
		if !strings.Contains(raw, frag) {
			t.Errorf("network inspect bridge lacks %q:\n%s", frag, raw)
		}
	}
	if out := h.MustRun("ip", "-o", "addr", "show", "cnet0"); !strings.Contains(out, "172.17.0.1/16") {
		t.Errorf("cnet0 lacks the gateway address: %s", out)
	}
}

func TestDefaultBridgeContainer(t *testing.T) {
	h := testenv.NewHost(t)
	runSleeper(t, h, "c1")
	c := inspectContainer(t, h, "c1")
	ns := c.NetworkSettings
	if ns.IPAddress != "172.17.0.2" || ns.IPPrefixLen != 16 || ns.MacAddress != "02:42:ac:11:00:02" || ns.Gateway != "172.17.0.1" {
		t.Fatalf("c1 on the default bridge: ip %s/%d mac %s gw %s, want 172.17.0.2/16 02:42:ac:11:00:02 via 172.17.0.1",
			ns.IPAddress, ns.IPPrefixLen, ns.MacAddress, ns.Gateway)
	}
	if !c.State.Running || c.State.Pid == 0 || c.Config.Hostname != c.ID[:12] {
		t.Errorf("state %+v hostname %q", c.State, c.Config.Hostname)
	}
	addr := h.MustCLI("exec", "c1", "busybox", "ip", "-o", "addr", "show", "eth0")
	if !strings.Contains(addr, "172.17.0.2/16") || strings.Contains(addr, "inet6") {
		t.Errorf("eth0 inside c1 (want 172.17.0.2/16 and, as Docker without IPv6, no inet6): %s", addr)
	}
	link := h.MustCLI("exec", "c1", "busybox", "ip", "-o", "link", "show", "eth0")
	if !strings.Contains(link, "02:42:ac:11:00:02") || !strings.Contains(link, "mtu 1500") {
		t.Errorf("eth0 link inside c1: %s", link)
	}
	route := h.MustCLI("exec", "c1", "busybox", "ip", "route")
	if !strings.Contains(route, "default via 172.17.0.1 dev eth0") {
		t.Errorf("routes inside c1:\n%s", route)
	}
	hosts := h.MustCLI("exec", "c1", "busybox", "cat", "/etc/hosts")
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost") || !strings.Contains(hosts, "172.17.0.2\t"+c.ID[:12]) {
		t.Errorf("/etc/hosts inside c1:\n%s", hosts)
	}
	if got := strings.TrimSpace(h.MustCLI("exec", "c1", "busybox", "hostname")); got != c.ID[:12] {
		t.Errorf("hostname inside c1 = %q", got)
	}
	hostPing(t, h, "172.17.0.2")

	// The host end is a veth<7 hex> port of cnet0.
	ports := h.MustRun("ip", "-o", "link", "show", "master", "cnet0")
	if !regexp.MustCompile(`veth[0-9a-f]{7}@`).MatchString(ports) {
		t.Errorf("ports of cnet0: %s", ports)
	}

	// A second container gets the next address; stopping the first frees its own.
	runSleeper(t, h, "c2")
	if ip := ipOn(t, h, "c2", "bridge"); ip != "172.17.0.3" {
		t.Errorf("c2 got %s, want 172.17.0.3", ip)
	}
	execPing(t, h, "c2", "172.17.0.2")
	h.MustCLI("stop", "-t", "1", "c1")
	if out := h.MustRun("ip", "-o", "link", "show", "master", "cnet0"); strings.Count(out, "veth") != 1 {
		t.Errorf("after stopping c1, cnet0 ports:\n%s", out)
	}
	runSleeper(t, h, "c3")
	if ip := ipOn(t, h, "c3", "bridge"); ip != "172.17.0.2" {
		t.Errorf("c3 got %s, want the released 172.17.0.2", ip)
	}
}

func TestUserBridge(t *testing.T) {
	h := testenv.NewHost(t)
	id := strings.TrimSpace(h.MustCLI("network", "create", "--driver", "bridge", "mybridge"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("network create printed %q, want a 64-hex id", id)
	}
	n := inspectNetwork(t, h, "mybridge")
	if len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "172.18.0.0/16" || n.IPAM.Config[0].Gateway != "172.18.0.1" {
		t.Fatalf("mybridge IPAM = %+v, want the next free /16, 172.18.0.0/16", n.IPAM.Config)
	}
	if out := h.MustRun("ip", "-o", "addr", "show", "br-"+id[:12]); !strings.Contains(out, "172.18.0.1/16") {
		t.Fatalf("bridge br-%s: %s", id[:12], out)
	}
	runSleeper(t, h, "c1", "--net", "mybridge")
	runSleeper(t, h, "c2", "--network", "mybridge")
	if a, b := ipOn(t, h, "c1", "mybridge"), ipOn(t, h, "c2", "mybridge"); a != "172.18.0.2" || b != "172.18.0.3" {
		t.Fatalf("c1 %s c2 %s, want 172.18.0.2 and 172.18.0.3", a, b)
	}
	execPing(t, h, "c1", "172.18.0.3")
	execPing(t, h, "c2", "172.18.0.2")

	n = inspectNetwork(t, h, "mybridge")
	if len(n.Containers) != 2 {
		t.Fatalf("mybridge Containers = %+v", n.Containers)
	}
	for cid, ep := range n.Containers {
		if len(cid) != 64 || len(ep.EndpointID) != 64 || !strings.HasPrefix(ep.MacAddress, "02:42:ac:12:00:0") || !strings.HasSuffix(ep.IPv4Address, "/16") {
			t.Errorf("endpoint %s: %+v", cid, ep)
		}
	}

	// A network with the user's subnet, ip-range, gateway and static addresses.
	h.MustCLI("network", "create", "--subnet", "10.10.0.0/24", "--ip-range", "10.10.0.128/25", "--gateway", "10.10.0.254",
		"--aux-address", "printer=10.10.0.128", "custom")
	runSleeper(t, h, "c3", "--net", "custom")
	if ip := ipOn(t, h, "c3", "custom"); ip != "10.10.0.129" {
		t.Errorf("c3 on custom got %s, want 10.10.0.129 (first of the range after the aux address)", ip)
	}
	runSleeper(t, h, "c4", "--net", "custom", "--ip", "10.10.0.7")
	if ip := ipOn(t, h, "c4", "custom"); ip != "10.10.0.7" {
		t.Errorf("c4 got %s, want its static 10.10.0.7", ip)
	}
	if route := h.MustCLI("exec", "c4", "busybox", "ip", "route"); !strings.Contains(route, "default via 10.10.0.254") {
		t.Errorf("c4 routes:\n%s", route)
	}
	execPing(t, h, "c3", "10.10.0.7")
}

func TestConnectDisconnect(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "mybridge")
	runSleeper(t, h, "c1")
	h.MustCLI("network", "connect", "mybridge", "c1")
	addr := h.MustCLI("exec", "c1", "busybox", "ip", "-o", "addr", "show", "eth1")
	if !strings.Contains(addr, "172.18.0.2/16") {
		t.Fatalf("after connect, eth1 = %s", addr)
	}
	if hosts := h.MustCLI("exec", "c1", "busybox", "cat", "/etc/hosts"); !strings.Contains(hosts, "172.18.0.2\t") {
		t.Errorf("/etc/hosts after connect:\n%s", hosts)
	}
	// The first network keeps the default route.
	if route := h.MustCLI("exec", "c1", "busybox", "ip", "route"); !strings.Contains(route, "default via 172.17.0.1 dev eth0") {
		t.Errorf("routes after connect:\n%s", route)
	}
	nets := h.MustCLI("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}", "c1")
	if strings.TrimSpace(nets) != "bridge=172.17.0.2 mybridge=172.18.0.2" {
		t.Errorf("inspect networks = %q", nets)
	}
	_, errOut, code := h.CLI("network", "connect", "mybridge", "c1")
	if code == 0 || !strings.Contains(errOut, "already exists in network mybridge") {
		t.Errorf("second connect: exit %d, %s", code, errOut)
	}

	h.MustCLI("network", "disconnect", "bridge", "c1")
	if links := h.MustCLI("exec", "c1", "busybox", "ip", "-o", "link"); strings.Contains(links, "eth0") || !strings.Contains(links, "eth1") {
		t.Errorf("after disconnecting bridge, links:\n%s", links)
	}
	// The default route moves to the remaining network.
	if route := h.MustCLI("exec", "c1", "busybox", "ip", "route"); !strings.Contains(route, "default via 172.18.0.1 dev eth1") {
		t.Errorf("routes after disconnect:\n%s", route)
	}
	h.MustCLI("network", "disconnect", "mybridge", "c1")
	if links := h.MustCLI("exec", "c1", "busybox", "ip", "-o", "link"); strings.Contains(links, "eth") {
		t.Errorf("after disconnecting all, links:\n%s", links)
	}
	if n := inspectNetwork(t, h, "mybridge"); len(n.Containers) != 0 {
		t.Errorf("mybridge still lists %v", n.Containers)
	}
	// Reconnecting hands the lowest free address out again.
	h.MustCLI("network", "connect", "mybridge", "c1")
	if ip := ipOn(t, h, "c1", "mybridge"); ip != "172.18.0.2" {
		t.Errorf("reconnected c1 got %s, want 172.18.0.2", ip)
	}
	// As Docker, a static address needs a network whose subnet the user chose.
	_, errOut, code = h.CLI("network", "connect", "--ip", "172.18.0.50", "bridge", "c1")
	if code == 0 || !strings.Contains(errOut, "user defined networks only") {
		t.Errorf("connect --ip to the default bridge: exit %d %s", code, errOut)
	}
}
