package integration

import (
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// state is what a refused command must leave unchanged: the networks, the containers and the
// host's links.
func state(t *testing.T, h *testenv.Host) string {
	t.Helper()
	return h.MustCLI("network", "ls", "--no-trunc") + h.MustCLI("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}") +
		h.MustRun("ip", "-o", "link", "show") + h.MustRun("ip", "-o", "-4", "addr", "show") // IPv6 link-local DAD flags change by themselves
}

func TestRefusalsChangeNothing(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--subnet", "10.20.0.0/16", "used")
	h.MustCLI("network", "create", "--subnet", "10.40.0.0/16", "spare")
	runSleeper(t, h, "c1", "--net", "used")
	before := state(t, h)

	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"rm of a network in use", []string{"network", "rm", "used"}, "has active endpoints"},
		{"rm of a predefined network", []string{"network", "rm", "bridge"}, "pre-defined network and cannot be removed"},
		{"duplicate name", []string{"network", "create", "used"}, "network with name used already exists"},
		{"unknown driver", []string{"network", "create", "-d", "nosuchdriver", "x1"}, "nosuchdriver"},
		{"overlapping subnet", []string{"network", "create", "--subnet", "10.20.5.0/24", "x2"}, "overlaps"},
		{"subnet with host bits", []string{"network", "create", "--subnet", "10.30.5.0/16", "x3"}, "10.30.0.0/16"},
		{"gateway outside subnet", []string{"network", "create", "--subnet", "10.31.0.0/16", "--gateway", "10.32.0.1", "x4"}, "10.32.0.1"},
		{"bad subnet", []string{"network", "create", "--subnet", "10.33.0.0/33", "x5"}, "10.33.0.0/33"},
		{"bad name", []string{"network", "create", "../etc"}, "invalid network name"},
		{"bad mtu", []string{"network", "create", "-o", "com.docker.network.driver.mtu=12", "x6"}, "mtu"},
		{"second host network", []string{"network", "create", "-d", "host", "x7"}, `only one instance of "host" network is allowed`},
		{"ip outside the subnet", []string{"run", "--rootfs", "/", "-d", "--name", "new2", "--net", "used", "--ip", "192.168.1.5", "busybox", "sleep", "1"}, "does not belong to any of network used's subnets"},
		{"ip in use", []string{"run", "--rootfs", "/", "-d", "--name", "new2", "--net", "used", "--ip", "10.20.0.2", "busybox", "sleep", "1"}, "in use"},
		{"ip on the default bridge", []string{"run", "--rootfs", "/", "-d", "--name", "new2", "--ip", "172.17.0.9", "busybox", "sleep", "1"}, "user defined networks only"},
		{"connect ip outside", []string{"network", "connect", "--ip", "10.99.0.1", "spare", "c1"}, "does not belong"},
		{"unknown network", []string{"run", "--rootfs", "/", "-d", "--net", "nosuchnet", "busybox", "sleep", "1"}, "network nosuchnet not found"},
		{"duplicate container name", []string{"run", "--rootfs", "/", "-d", "--name", "c1", "busybox", "sleep", "1"}, "is already in use"},
		{"command not found", []string{"run", "--rootfs", "/", "-d", "--name", "new3", "--net", "used", "nosuchcommand-xyz"}, "nosuchcommand-xyz"},
		{"rm of a running container", []string{"rm", "c1"}, "Stop the container before attempting removal"},
		{"unknown container", []string{"network", "connect", "used", "nosuchcontainer"}, "No such container: nosuchcontainer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRefused(t, h, tt.args, tt.want)
			// A container whose start failed stays, as in Docker, in state created; remove it
			// so the comparison is about networking state. The names are not hex: as in
			// Docker, a reference that names no container matches by ID prefix, so `rm -f c3`
			// would remove c1 whenever c1's ID began with "c3".
			h.CLI("rm", "-f", "new2")
			h.CLI("rm", "-f", "new3")
			if after := state(t, h); after != before {
				t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// The refused --ip attempts released nothing and took nothing: the next address is .3.
	runSleeper(t, h, "c4", "--net", "used")
	if ip := ipOn(t, h, "c4", "used"); ip != "10.20.0.3" {
		t.Errorf("after refusals c4 got %s, want 10.20.0.3", ip)
	}
}

func TestMissingDaemonMessage(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Binary(t)
	out, err := testenvCmd(bin, "-H", "unix:///nonexistent/cnet.sock", "network", "ls").CombinedOutput()
	if err == nil || strings.TrimSpace(string(out)) != "cannot connect to the cnet daemon at unix:///nonexistent/cnet.sock: is it running?" {
		t.Fatalf("without a daemon: %v %q", err, out)
	}
}

// expectRefused runs a cnet command that must fail, with want in its error output.
func expectRefused(t *testing.T, h *testenv.Host, args []string, want string) {
	t.Helper()
	_, errOut, code := h.CLI(args...)
	if code == 0 {
		t.Fatalf("cnet %s succeeded, want it refused", strings.Join(args, " "))
	}
	if !strings.Contains(errOut, want) {
		t.Errorf("cnet %s: stderr %q, want it to mention %q", strings.Join(args, " "), errOut, want)
	}
}
