package integration

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// httpGet fetches / from addr:port with busybox nc, from the host or (with pid) from the
// client host; it returns what came back or the error output.
func httpGet(h *testenv.Host, clientPid, addr, port string) (string, error) {
	script := `printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 2 ` + addr + ` ` + port
	if clientPid != "" {
		return h.Run("nsenter", "-t", clientPid, "-n", "sh", "-c", script)
	}
	return h.Run("sh", "-c", script)
}

// TestPublishedPorts is seed 001's `-p 5000:80` with a client host on an underlay: the port
// answers from the client, from the host via its own address and 127.0.0.1, and from a
// container through the host (hairpin); `cnet port` prints Docker's line; a taken port is
// refused; masquerade shows the host's address to the client; rm leaves no DNAT behind.
func TestPublishedPorts(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
	www := filepath.Join(h.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustCLI("network", "create", "localnet")
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "web", "--network", "localnet", "-p", "5000:80", "busybox", "httpd", "-f", "-p", "80", "-h", www)
	if got := h.MustCLI("port", "web"); got != "80/tcp -> 0.0.0.0:5000\n" {
		t.Errorf("cnet port web = %q", got)
	}
	if ps := h.MustCLI("ps"); !strings.Contains(ps, "0.0.0.0:5000->80/tcp") {
		t.Errorf("ps:\n%s", ps)
	}
	if got := strings.TrimSpace(h.MustCLI("inspect", "-f", `{{json .NetworkSettings.Ports}} {{json .HostConfig.PortBindings}}`, "web")); got !=
		`{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"5000"}]} {"80/tcp":[{"HostIp":"","HostPort":"5000"}]}` {
		t.Errorf("inspect ports: %s", got)
	}
	waitFor(t, "httpd", func() bool {
		out, _ := httpGet(h, "", "127.0.0.1", "5000")
		return strings.Contains(out, "served by web")
	})
	for _, c := range []struct{ who, pid, addr string }{
		{"the host via 127.0.0.1", "", "127.0.0.1"},
		{"the host via its own address", "", "10.99.0.1"},
		{"the client host", seg.pid, "10.99.0.1"},
	} {
		if out, err := httpGet(h, c.pid, c.addr, "5000"); err != nil || !strings.Contains(out, "served by web") {
			t.Errorf("from %s: %v %q", c.who, err, out)
		}
	}
	runSleeper(t, h, "neighbour", "--network", "localnet")
	if out, _, _ := h.CLI("exec", "neighbour", "sh", "-c", `printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 2 10.99.0.1 5000`); !strings.Contains(out, "served by web") {
		t.Errorf("hairpin from a container on the same network: %q", out)
	}

	// Masquerade: a container reaching the client shows up with the host's address.
	got, seen := atClient(t, h, seg, func() {
		h.MustCLI("exec", "neighbour", "sh", "-c", "echo from-container | busybox nc 10.99.0.2 7000")
	})
	if got != "from-container\n" {
		t.Errorf("the client got %q", got)
	}
	if !strings.Contains(seen, "10.99.0.1:") || strings.Contains(seen, "172.18.") {
		t.Errorf("the client sees the container's connection as:\n%s\nwant it from the host's 10.99.0.1", seen)
	}

	// A taken host port is refused, and nothing changes.
	_, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--name", "web2", "-p", "5000:80", "busybox", "sleep", "60")
	if code == 0 || !strings.Contains(errOut, "port is already allocated") {
		t.Errorf("second -p 5000: exit %d %q", code, errOut)
	}
	h.CLI("rm", "-f", "web2")
	if out, err := httpGet(h, seg.pid, "10.99.0.1", "5000"); err != nil || !strings.Contains(out, "served by web") {
		t.Errorf("after the refused publish, the first one: %v %q", err, out)
	}

	// A port published on 127.0.0.1 only: the host reaches it, the client does not.
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "local", "--network", "localnet", "-p", "127.0.0.1:5001:80", "busybox", "httpd", "-f", "-p", "80", "-h", www)
	waitFor(t, "the loopback-only port", func() bool {
		out, _ := httpGet(h, "", "127.0.0.1", "5001")
		return strings.Contains(out, "served by web")
	})
	if out, _ := httpGet(h, seg.pid, "10.99.0.1", "5001"); strings.Contains(out, "served by web") {
		t.Errorf("a port published on 127.0.0.1 answered the client host")
	}

	// Ranges and random ports.
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "ranged", "-p", "6000-6002:7000-7002", "-p", "80", "busybox", "sleep", "3600")
	out := h.MustCLI("port", "ranged")
	for _, want := range []string{"7000/tcp -> 0.0.0.0:6000\n", "7001/tcp -> 0.0.0.0:6001\n", "7002/tcp -> 0.0.0.0:6002\n", "80/tcp -> 0.0.0.0:"} {
		if !strings.Contains(out, want) {
			t.Errorf("cnet port ranged lacks %q:\n%s", want, out)
		}
	}

	// Removal takes the DNAT with it; a restart keeps the live ones.
	h.MustCLI("rm", "-f", "ranged", "local")
	if rules := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any"); strings.Contains(rules, "6000") {
		t.Errorf("after rm, ports_any still holds ranged's ports:\n%s", rules)
	}
	h.KillDaemon()
	h.StartDaemon()
	if out, err := httpGet(h, seg.pid, "10.99.0.1", "5000"); err != nil || !strings.Contains(out, "served by web") {
		t.Errorf("after a daemon crash and restart: %v %q", err, out)
	}
}

// TestIsolation shows two bridge networks cannot reach each other either way, while each
// reaches its own members, and an --internal network reaches nothing beyond its bridge.
func TestIsolation(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
	h.MustCLI("network", "create", "neta")
	h.MustCLI("network", "create", "netb")
	h.MustCLI("network", "create", "--internal", "closed")
	runSleeper(t, h, "a1", "--net", "neta")
	runSleeper(t, h, "a2", "--net", "neta")
	runSleeper(t, h, "b1", "--net", "netb")
	runSleeper(t, h, "i1", "--net", "closed")
	a1, b1 := ipOn(t, h, "a1", "neta"), ipOn(t, h, "b1", "netb")
	execPing(t, h, "a2", a1)
	noPing(t, h, "a1", b1)
	noPing(t, h, "b1", a1)
	execPing(t, h, "a1", "10.99.0.2") // out through masquerade
	noPing(t, h, "i1", "10.99.0.2")
	_ = seg
}

// TestPublishedUDP publishes a UDP port (busybox nc has no UDP: the test's own echo server
// runs in the container's namespace) and reaches it from the client host.
func TestPublishedUDP(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "uplink0", "10.99.0.2/24")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
	h.MustCLI("network", "create", "localnet")
	runSleeper(t, h, "udp", "--network", "localnet", "-p", "5353:5300/udp")
	if got := h.MustCLI("port", "udp"); got != "5300/udp -> 0.0.0.0:5353\n" {
		t.Errorf("cnet port udp = %q", got)
	}
	key := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", "udp"))
	reply := udpEcho(t, h, key, "udp4", "0.0.0.0:5300", "/proc/"+seg.pid+"/ns/net", "10.99.0.1:5353")
	if reply != "echo:ping" {
		t.Errorf("UDP through the published port answered %q", reply)
	}
}

// atClient listens on the client host's TCP port 7000 while send runs, and returns what the
// one connection it takes brought and the client's TCP connections (netstat) while it was
// established: where the client sees it come from. nc -e takes the connection as its stdin,
// so the listener does not depend on its own stdin (busybox nc gives up a connection when its
// stdin ends); the peer is noted while the connection is up (after the close, only the side
// that closed first keeps it, in TIME_WAIT: which side that is, is a race).
func atClient(t *testing.T, h *testenv.Host, seg *segment, send func()) (received, peers string) {
	t.Helper()
	out, conns := filepath.Join(h.Dir, "client.out"), filepath.Join(h.Dir, "client.peers")
	listener := h.Cmd("nsenter", "-t", seg.pid, "-n", "busybox", "nc", "-l", "-p", "7000", "-e", "sh", "-c",
		"busybox netstat -tn > "+conns+"; cat > "+out)
	if err := listener.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client's listener", func() bool {
		out, _ := h.Run("nsenter", "-t", seg.pid, "-n", "busybox", "netstat", "-ltn")
		return strings.Contains(out, ":7000 ")
	})
	send()
	if err := listener.Wait(); err != nil {
		t.Errorf("the client's listener: %v", err)
	}
	got, _ := os.ReadFile(out)
	seen, _ := os.ReadFile(conns)
	return string(got), string(seen)
}

// udpEcho runs an echo server on listen (network udp4 or udp6) in the namespace at key (a
// container's sandbox), sends "ping" to target from the namespace at client, and returns the
// reply ("" for none).
func udpEcho(t *testing.T, h *testenv.Host, key, network, listen, client, target string) string {
	t.Helper()
	var srv net.PacketConn
	inNetNS(t, h.Path(key), func() {
		var err error
		if srv, err = net.ListenPacket(network, listen); err != nil {
			t.Error(err)
		}
	})
	if srv == nil {
		t.FailNow()
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	var reply string
	inNetNS(t, h.Path(client), func() {
		c, err := net.Dial(network, target)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for range 5 { // UDP: a lost first datagram (neighbour discovery) is retried
			_, _ = c.Write([]byte("ping"))
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err == nil {
				reply = string(buf[:n])
				return
			}
		}
	})
	return reply
}

// TestICCDisabled shows enable_icc=false: containers on that bridge cannot reach each other,
// while on a normal bridge they can, and both still reach the client host.
func TestICCDisabled(t *testing.T) {
	h := testenv.NewHost(t)
	newSegment(t, h, "uplink0", "10.99.0.2/24")
	h.MustRun("ip", "addr", "add", "10.99.0.1/24", "dev", "uplink0")
	h.MustCLI("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", "quiet")
	runSleeper(t, h, "q1", "--net", "quiet")
	runSleeper(t, h, "q2", "--net", "quiet")
	noPing(t, h, "q1", ipOn(t, h, "q2", "quiet"))
	execPing(t, h, "q1", "10.99.0.2")
}

// TestUserlandProxy runs the daemon with --userland-proxy: a published port is also carried by
// the daemon itself, so it still answers with cnet's DNAT rules emptied, and its listener goes
// with the container.
func TestUserlandProxy(t *testing.T) {
	h := testenv.NewHost(t)
	h.StopDaemon()
	h.StartDaemon("--userland-proxy")
	www := filepath.Join(h.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("via the proxy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.MustCLI("run", "--rootfs", "/", "-d", "--name", "web", "-p", "5000:80", "busybox", "httpd", "-f", "-p", "80", "-h", www)
	if out := h.MustRun("busybox", "netstat", "-ltn"); !strings.Contains(out, "0.0.0.0:5000 ") {
		t.Fatalf("no proxy listening on :5000:\n%s", out)
	}
	for _, chain := range []string{"prerouting", "output"} {
		h.MustRun("nft", "flush", "chain", "ip", "cnet", chain)
	}
	waitFor(t, "httpd through the proxy", func() bool {
		out, _ := httpGet(h, "", "127.0.0.1", "5000")
		return strings.Contains(out, "via the proxy")
	})
	h.MustCLI("rm", "-f", "web")
	if out := h.MustRun("busybox", "netstat", "-ltn"); strings.Contains(out, ":5000 ") {
		t.Errorf("the proxy still listens after rm:\n%s", out)
	}
}
