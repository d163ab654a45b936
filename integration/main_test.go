// Package integration drives cnet the way a user does — the cnet binary against a real daemon —
// each test in its own throwaway host (internal/testenv), with real namespaces, links and
// processes, and checks what the user would see.
package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// inspectContainer returns `cnet inspect NAME` decoded.
func inspectContainer(t *testing.T, h *testenv.Host, name string) api.ContainerJSON {
	t.Helper()
	var out []api.ContainerJSON
	if err := json.Unmarshal([]byte(h.MustCLI("inspect", name)), &out); err != nil || len(out) != 1 {
		t.Fatalf("decoding inspect %s: %v", name, err)
	}
	return out[0]
}

// inspectNetwork returns `cnet network inspect NAME` decoded.
func inspectNetwork(t *testing.T, h *testenv.Host, name string) api.Network {
	t.Helper()
	var out []api.Network
	if err := json.Unmarshal([]byte(h.MustCLI("network", "inspect", name)), &out); err != nil || len(out) != 1 {
		t.Fatalf("decoding network inspect %s: %v", name, err)
	}
	return out[0]
}

// ipOn returns a container's address on a network, from inspect.
func ipOn(t *testing.T, h *testenv.Host, name, network string) string {
	t.Helper()
	return strings.TrimSpace(h.MustCLI("inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", name))
}

// ping sends one ICMP echo from the host namespace.
func hostPing(t *testing.T, h *testenv.Host, ip string) {
	t.Helper()
	if out, err := h.Run("busybox", "ping", "-c", "1", "-W", "2", ip); err != nil {
		t.Fatalf("host cannot ping %s: %v\n%s", ip, err, out)
	}
}

// execPing pings from inside a container.
func execPing(t *testing.T, h *testenv.Host, name, ip string) {
	t.Helper()
	if out, errOut, code := h.CLI("exec", name, "busybox", "ping", "-c", "1", "-W", "2", ip); code != 0 {
		t.Fatalf("%s cannot ping %s (exit %d):\n%s%s", name, ip, code, out, errOut)
	}
}

// runSleeper starts a detached container that just waits.
func runSleeper(t *testing.T, h *testenv.Host, name string, flags ...string) string {
	t.Helper()
	args := append([]string{"run", "--rootfs", "/", "-d", "--name", name}, flags...)
	args = append(args, "busybox", "sleep", "3600")
	return strings.TrimSpace(h.MustCLI(args...))
}

func testenvCmd(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }
