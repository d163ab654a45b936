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
// creation, container start with a published port, and disconnect; restarts it; and checks
// the invariants: no address held twice, no interface, namespace or firewall element without
// its owner, every running container reachable by address and name with its ports, the
// interrupted operation completed or rolled back, and new work getting fresh addresses.
func TestCrashAnywhere(t *testing.T) {
	for _, point := range faults.Points {
		t.Run(point, func(t *testing.T) {
			h := testenv.NewHost(t)
			h.MustCLI("network", "create", "crashnet")
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
				op = []string{"run", "-d", "--name", "victim", "--net", "crashnet", "-p", "8080:80", "busybox", "sleep", "3600"}
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

func checkInvariants(t *testing.T, h *testenv.Host) {
	t.Helper()
	var nets []api.Network
	if err := json.Unmarshal([]byte(h.MustCLI("network", "inspect", "bridge", "crashnet")), &nets); err != nil {
		t.Fatal(err)
	}
	endpoints := 0
	for _, n := range nets {
		seen := map[string]string{}
		for _, ep := range n.Containers {
			if other, dup := seen[ep.IPv4Address]; dup {
				t.Errorf("%s and %s both hold %s on %s", other, ep.Name, ep.IPv4Address, n.Name)
			}
			seen[ep.IPv4Address] = ep.Name
			endpoints++
		}
	}
	if veths := countVeths(h.MustRun("ip", "-o", "link", "show")); veths != endpoints {
		t.Errorf("%d veths for %d endpoints", veths, endpoints)
	}
	running := strings.Fields(h.MustCLI("ps", "-q"))
	netns, _ := h.Run("ls", h.Dir+"/exec/netns")
	if got := len(strings.Fields(netns)); got != len(running) {
		t.Errorf("%d namespace files for %d running containers", got, len(running))
	}
	if procs := h.MustRun("sh", "-c", "busybox ps -o args | grep -c '^busybox sleep 3600' || true"); strings.TrimSpace(procs) != itoa(len(running)) {
		t.Errorf("%s container processes for %d running containers", strings.TrimSpace(procs), len(running))
	}
	ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any")
	if !strings.Contains(ports, "tcp . 9090") {
		t.Errorf("the survivor's published port is gone:\n%s", ports)
	}
	victimRuns := strings.Contains(h.MustCLI("ps", "--format", "{{.Names}}"), "victim")
	if strings.Contains(ports, "tcp . 8080") != victimRuns {
		t.Errorf("victim running %v, its port 8080 in the firewall %v", victimRuns, !victimRuns)
	}
	for _, name := range []string{"survivor", "victim"} {
		if name == "victim" && !victimRuns {
			continue
		}
		hostPing(t, h, ipOn(t, h, name, "crashnet"))
	}
	// New work gets a fresh address and reaches the survivor by name.
	runSleeper(t, h, "fresh", "--net", "crashnet")
	fresh := ipOn(t, h, "fresh", "crashnet")
	for _, n := range nets {
		for _, ep := range n.Containers {
			if strings.HasPrefix(ep.IPv4Address, fresh+"/") {
				t.Errorf("fresh got %s, already held by %s", fresh, ep.Name)
			}
		}
	}
	execPing(t, h, "fresh", "survivor")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
