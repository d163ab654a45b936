package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// TestCrashAnywhere kills the daemon (SIGKILL, no cleanup) at every named step of network
// creation, container start with a published port, and disconnect, on a dual-stack network
// (so that IPv6 addresses and the ip6 table are held to the same rules); restarts it; and checks
// the invariants: no address held twice, no interface, namespace or firewall element without
// its owner, every running container reachable by address and name with its ports, the
// interrupted operation completed or rolled back, and new work getting fresh addresses.
func TestCrashAnywhere(t *testing.T) {
	for _, point := range faults.Points {
		t.Run(point, func(t *testing.T) {
			h := testenv.NewHost(t)
			h.MustCLI("network", "create", "--ipv6", "--subnet", "fd66::/64", "crashnet")
			runSleeper(t, h, "survivor", "--net", "crashnet", "-p", "9090:80")
			h.MustCLI("network", "connect", "bridge", "survivor")

			h.StopDaemon()
			h.StartDaemonEnv([]string{faults.Env + "=" + point})
			var op []string
			switch point {
			case "network-recorded", "network-created":
				op = []string{"network", "create", "newnet"}
			case "endpoint-unplugged":
				op = []string{"network", "disconnect", "bridge", "survivor"}
			default:
				op = []string{"run", "--rootfs", "/", "-d", "--name", "victim", "--net", "crashnet", "-p", "8080:80", "busybox", "sleep", "3600"}
			}
			if _, _, code := h.CLI(op...); code == 0 {
				t.Fatalf("cnet %s succeeded: the daemon did not crash at %s", strings.Join(op, " "), point)
			}
			h.WaitDaemonGone()
			h.StartDaemon()
			checkInvariants(t, h)
		})
	}
}

// checkInvariants is what must hold after any crash and restart (see checkState), plus what
// TestCrashAnywhere's scenario adds: the survivor's port, the victim all or nothing, and new
// work getting a fresh address that reaches the survivor by name.
func checkInvariants(t *testing.T, h *testenv.Host) {
	t.Helper()
	held := checkState(t, h)
	ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any")
	if !strings.Contains(ports, "tcp . 9090") {
		t.Errorf("the survivor's published port is gone:\n%s", ports)
	}
	ports6 := h.MustRun("nft", "list", "map", "ip6", "cnet", "ports_any")
	if !strings.Contains(ports6, "tcp . 9090") {
		t.Errorf("the survivor's published port is gone from the ip6 table:\n%s", ports6)
	}
	victimRuns := strings.Contains(h.MustCLI("ps", "--format", "{{.Names}}"), "victim")
	if strings.Contains(ports, "tcp . 8080") != victimRuns || strings.Contains(ports6, "tcp . 8080") != victimRuns {
		t.Errorf("victim running %v, its port 8080 in the firewall: ip %v, ip6 %v", victimRuns,
			strings.Contains(ports, "tcp . 8080"), strings.Contains(ports6, "tcp . 8080"))
	}
	runSleeper(t, h, "fresh", "--net", "crashnet")
	for _, fresh := range []string{ipOn(t, h, "fresh", "crashnet"), ip6On(t, h, "fresh", "crashnet")} {
		if held["crashnet"][fresh] != "" {
			t.Errorf("fresh got %s, already held by %s", fresh, held["crashnet"][fresh])
		}
	}
	execPing(t, h, "fresh", "survivor")
}

// checkState checks the invariants that hold in any quiet state: no address held twice on a
// network; as many veths as bridge endpoints, namespace files and container processes as
// running containers, DNAT elements as published ports; every running container reachable at
// each of its addresses. It returns who holds which address, per network.
func checkState(t *testing.T, h *testenv.Host) map[string]map[string]string {
	t.Helper()
	var nets []api.Network
	args := append([]string{"network", "inspect"}, strings.Fields(h.MustCLI("network", "ls", "-q"))...)
	if err := json.Unmarshal([]byte(h.MustCLI(args...)), &nets); err != nil {
		t.Fatal(err)
	}
	held := map[string]map[string]string{}
	endpoints, pinged := 0, 0
	for _, n := range nets {
		held[n.Name] = map[string]string{}
		for _, ep := range n.Containers {
			if n.Driver == "bridge" {
				endpoints++
			}
			for _, a := range []string{ep.IPv4Address, ep.IPv6Address} {
				if a == "" {
					continue
				}
				ip := strings.Split(a, "/")[0]
				if other := held[n.Name][ip]; other != "" {
					t.Errorf("%s and %s both hold %s on %s", other, ep.Name, ip, n.Name)
				}
				held[n.Name][ip] = ep.Name
				// The kernel's neighbour table is shared by every namespace and refuses new
				// entries past gc_thresh2 (512) while the old ones are fresh: after a long
				// churn there are more endpoints than that, so the host forgets its
				// neighbours as it goes (the thresholds can only be raised from the
				// machine's own namespace).
				if pinged++; pinged%200 == 0 {
					h.MustRun("ip", "neigh", "flush", "all")
				}
				hostPing(t, h, ip)
			}
		}
	}
	if veths := countVeths(h.MustRun("ip", "-o", "link", "show")); veths != endpoints {
		t.Errorf("%d veths for %d bridge endpoints", veths, endpoints)
	}
	ids := strings.Fields(h.MustCLI("ps", "-q"))
	netns, _ := h.Run("ls", h.Dir+"/exec/netns")
	if got := len(strings.Fields(netns)); got != len(ids) {
		t.Errorf("%d namespace files for %d running containers", got, len(ids))
	}
	if procs := h.MustRun("sh", "-c", "busybox ps -o args | grep -c '^busybox sleep 3600' || true"); strings.TrimSpace(procs) != itoa(len(ids)) {
		t.Errorf("%s container processes for %d running containers", strings.TrimSpace(procs), len(ids))
	}
	// ps shows 0.0.0.0:9090->80/tcp, :::9090->80/tcp: an IPv4 and an IPv6 port, one DNAT
	// element each in their family's table.
	published := map[string]int{}
	for _, p := range strings.FieldsFunc(h.MustCLI("ps", "--format", "{{.Ports}}"), func(r rune) bool { return r == ',' || r == '\n' }) {
		if p = strings.TrimSpace(p); strings.Contains(p, "->") {
			fam := "ip"
			if strings.Contains(p, "::") {
				fam = "ip6"
			}
			published[fam]++
		}
	}
	for _, fam := range []string{"ip", "ip6"} {
		dnat := h.MustRun("nft", "list", "map", fam, "cnet", "ports_any")
		if got := strings.Count(dnat, "tcp . ") + strings.Count(dnat, "udp . "); got != published[fam] {
			t.Errorf("%d DNAT elements in table %s cnet for %d published ports", got, fam, published[fam])
		}
	}
	return held
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
