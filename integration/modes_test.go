package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// waitFor polls fn for up to 5 s; it is how tests wait for a background process to be ready
// without a fixed sleep.
func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHostMode(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "mybridge")
	hostLinks := h.MustRun("ls", "/sys/class/net")
	if got := h.MustCLI("run", "--rootfs", "/", "--rm", "--net", "host", "busybox", "ls", "/sys/class/net"); got != hostLinks {
		t.Errorf("host mode sees links %q, the host has %q", got, hostLinks)
	}
	hostName := strings.TrimSpace(h.MustRun("hostname"))
	if got := strings.TrimSpace(h.MustCLI("run", "--rootfs", "/", "--rm", "--net", "host", "busybox", "hostname")); got != hostName {
		t.Errorf("host mode hostname %q, host's %q", got, hostName)
	}
	// A server in host mode binds a port of the host itself.
	received := filepath.Join(h.Dir, "host-mode.out")
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "srv", "--net", "host", "busybox", "nc", "-l", "-p", "9999", "-e", "sh", "-c", "cat > "+received)
	waitFor(t, "the host-mode server to listen", func() bool {
		out, _ := h.Run("busybox", "netstat", "-ltn")
		return strings.Contains(out, ":9999")
	})
	if out, err := h.Run("sh", "-c", "echo hello-from-host | busybox nc 127.0.0.1 9999"); err != nil {
		t.Fatalf("connecting to the host-mode server: %v %s", err, out)
	}
	waitFor(t, "the server's output", func() bool {
		got, _ := os.ReadFile(received)
		return string(got) == "hello-from-host\n"
	})

	nets := h.MustCLI("inspect", "-f", "{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}} key={{.NetworkSettings.SandboxKey}}", "srv")
	if strings.TrimSpace(nets) != "host host key=" {
		t.Errorf("inspect of a host-mode container: %q", nets)
	}
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "hostc", "--net", "host", "busybox", "sleep", "3600")
	for _, args := range [][]string{
		{"network", "connect", "mybridge", "hostc"},
		{"network", "disconnect", "host", "hostc"},
	} {
		if _, errOut, code := h.CLI(args...); code == 0 || !strings.Contains(errOut, "host") {
			t.Errorf("cnet %s: exit %d %q", strings.Join(args, " "), code, errOut)
		}
	}
	runSleeper(t, h, "bridged")
	if _, errOut, code := h.CLI("network", "connect", "host", "bridged"); code == 0 ||
		!strings.Contains(errOut, "container cannot be disconnected from host network or connected to host network") {
		t.Errorf("connect to host: exit %d %q", code, errOut)
	}
}

func TestNoneMode(t *testing.T) {
	h := testenv.NewHost(t)
	runSleeper(t, h, "isolated", "--net", "none")
	if links := h.MustCLI("exec", "isolated", "busybox", "ls", "/sys/class/net"); links != "lo\n" {
		t.Errorf("none mode links: %q", links)
	}
	if routes := h.MustCLI("exec", "isolated", "busybox", "ip", "route"); routes != "" {
		t.Errorf("none mode routes: %q", routes)
	}
	h.MustCLI("network", "create", "mybridge")
	_, errOut, code := h.CLI("network", "connect", "mybridge", "isolated")
	if code == 0 || !strings.Contains(errOut, "private (none) mode") {
		t.Errorf("connect of a none container: exit %d %q", code, errOut)
	}
	_, errOut, code = h.CLI("network", "connect", "none", "isolated")
	if code == 0 {
		t.Errorf("connect to none succeeded: %q", errOut)
	}
	if links := h.MustCLI("exec", "isolated", "busybox", "ls", "/sys/class/net"); links != "lo\n" {
		t.Errorf("after refused connects, links: %q", links)
	}
}

func TestContainerMode(t *testing.T) {
	h := testenv.NewHost(t)
	runSleeper(t, h, "c1")
	id1 := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.Id}}", "c1"))
	runSleeper(t, h, "c2", "--net", "container:c1")

	// The seed: both see the same eth0, with the same address and MAC.
	if a, b := h.MustCLI("exec", "c1", "busybox", "ip", "-o", "addr", "show", "eth0"),
		h.MustCLI("exec", "c2", "busybox", "ip", "-o", "addr", "show", "eth0"); a != b || !strings.Contains(a, "172.17.0.2/16") {
		t.Errorf("eth0 of c1:\n%s\nof c2:\n%s", a, b)
	}
	if a, b := h.MustCLI("exec", "c1", "busybox", "cat", "/sys/class/net/eth0/address"),
		h.MustCLI("exec", "c2", "busybox", "cat", "/sys/class/net/eth0/address"); a != b || a != "02:42:ac:11:00:02\n" {
		t.Errorf("MAC of c1 %q, of c2 %q", a, b)
	}
	// Hostname and hosts file are c1's.
	if a, b := h.MustCLI("exec", "c1", "busybox", "hostname"), h.MustCLI("exec", "c2", "busybox", "hostname"); a != b {
		t.Errorf("hostname of c1 %q, of c2 %q", a, b)
	}
	if a, b := h.MustCLI("exec", "c1", "busybox", "cat", "/etc/hosts"), h.MustCLI("exec", "c2", "busybox", "cat", "/etc/hosts"); a != b {
		t.Errorf("/etc/hosts of c1:\n%s\nof c2:\n%s", a, b)
	}
	if got := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.HostConfig.NetworkMode}} {{len .NetworkSettings.Networks}}", "c2")); got != "container:"+id1+" 0" {
		t.Errorf("inspect c2: %q", got)
	}

	// Sockets are shared both ways: a server in one is reachable on 127.0.0.1 from the other.
	for _, pair := range [][2]string{{"c1", "c2"}, {"c2", "c1"}} {
		srv, cli := pair[0], pair[1]
		port := map[string]string{"c1": "7001", "c2": "7002"}[srv]
		// nc -e reads the connection itself: busybox nc drops a connection once its own
		// stdin ends, and an exec without -i has none.
		received := filepath.Join(h.Dir, srv+".out")
		server := h.Cmd(h.Bin, "-H", "unix://"+h.Socket, "exec", srv, "busybox", "nc", "-l", "-p", port, "-e", "sh", "-c", "cat > "+received)
		if err := server.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, srv+" listening", func() bool {
			out, _, _ := h.CLI("exec", cli, "busybox", "netstat", "-ltn")
			return strings.Contains(out, ":"+port)
		})
		h.MustCLI("exec", cli, "busybox", "sh", "-c", "echo from-"+cli+" | busybox nc 127.0.0.1 "+port)
		err := server.Wait()
		if got, _ := os.ReadFile(received); err != nil || string(got) != "from-"+cli+"\n" {
			t.Errorf("server in %s got %q (%v), want what %s sent", srv, got, err, cli)
		}
	}

	// Docker's rules: no network of its own to connect, no hostname, a running target.
	h.MustCLI("network", "create", "mybridge")
	if _, errOut, code := h.CLI("network", "connect", "mybridge", "c2"); code == 0 || !strings.Contains(errOut, "sharing network namespace") {
		t.Errorf("connect c2: exit %d %q", code, errOut)
	}
	if _, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "-h", "x", "--net", "container:c1", "busybox", "sleep", "1"); code == 0 || !strings.Contains(errOut, "conflicting options") {
		t.Errorf("run -h with container mode: exit %d %q", code, errOut)
	}
	if _, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--net", "container:nosuch", "busybox", "sleep", "1"); code == 0 || !strings.Contains(errOut, "No such container: nosuch") {
		t.Errorf("run with an unknown target: exit %d %q", code, errOut)
	}
	runSleeper(t, h, "stopped")
	h.MustCLI("stop", "-t", "0", "stopped")
	_, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--name", "late", "--net", "container:stopped", "busybox", "sleep", "1")
	if code == 0 || !strings.Contains(errOut, "cannot join network of a non running container: stopped") {
		t.Errorf("run against a stopped target: exit %d %q", code, errOut)
	}
	h.CLI("rm", "-f", "late")

	// Docker's behaviour when the target stops: the joined container keeps running in the old
	// namespace, which has lost its interfaces; it does not follow the target's restart.
	h.MustCLI("stop", "-t", "1", "c1")
	if links := h.MustCLI("exec", "c2", "busybox", "ls", "/sys/class/net"); links != "lo\n" {
		t.Errorf("after the target stopped, c2 sees %q", links)
	}
}
