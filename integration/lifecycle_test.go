package integration

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

func TestForegroundRun(t *testing.T) {
	h := testenv.NewHost(t)
	tests := []struct {
		name     string
		args     []string
		stdout   string
		stderr   string
		exitCode int
	}{
		{"exit code and streams", []string{"run", "--rootfs", "/", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"}, "out\n", "err\n", 3},
		{"sees its own address", []string{"run", "--rootfs", "/", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0 | grep -o '172.17.0.2/16'"}, "172.17.0.2/16\n", "", 0},
		{"flags stop at the command", []string{"run", "--rootfs", "/", "--rm", "--name", "x", "busybox", "echo", "-n", "--name"}, "--name", "", 0},
		{"hostname flag", []string{"run", "--rootfs", "/", "--rm", "-h", "myhost", "busybox", "hostname"}, "myhost\n", "", 0},
		{"none has only lo", []string{"run", "--rootfs", "/", "--rm", "--net", "none", "busybox", "sh", "-c", "ls /sys/class/net"}, "lo\n", "", 0},
		{"env", []string{"run", "--rootfs", "/", "--rm", "-e", "FOO=bar", "busybox", "sh", "-c", "echo $FOO"}, "bar\n", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := h.CLI(tt.args...)
			if out != tt.stdout || errOut != tt.stderr || code != tt.exitCode {
				t.Errorf("cnet %s:\nstdout %q want %q\nstderr %q want %q\nexit %d want %d",
					strings.Join(tt.args, " "), out, tt.stdout, errOut, tt.stderr, code, tt.exitCode)
			}
		})
	}
	// --rm removed them all; the default bridge has no port left.
	if out := h.MustCLI("ps", "-aq"); out != "" {
		t.Errorf("ps -aq after --rm runs: %q", out)
	}
	// stdin with -i.
	cmd := h.Cmd(h.Bin, "-H", "unix://"+h.Socket, "run", "--rootfs", "/", "--rm", "-i", "busybox", "tr", "a-z", "A-Z")
	cmd.Stdin = strings.NewReader("hello\n")
	if out, err := cmd.Output(); err != nil || string(out) != "HELLO\n" {
		t.Errorf("run -i tr: %v %q", err, out)
	}
}

func TestPsInspectLogsStopRm(t *testing.T) {
	h := testenv.NewHost(t)
	id := strings.TrimSpace(h.MustCLI("run", "--rootfs", "/", "-d", "--name", "web", "busybox", "sh", "-c", "echo started; exec sleep 3600"))
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("run -d printed %q", id)
	}
	ps := h.MustCLI("ps")
	lines := strings.Split(strings.TrimSpace(ps), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") || !strings.HasPrefix(lines[1], id[:12]) ||
		!strings.Contains(lines[1], "Up ") || !strings.HasSuffix(lines[1], "web") {
		t.Errorf("ps:\n%s", ps)
	}
	if got := strings.TrimSpace(h.MustCLI("ps", "-q")); got != id[:12] {
		t.Errorf("ps -q = %q", got)
	}
	if got := h.MustCLI("logs", "web"); got != "started\n" {
		t.Errorf("logs = %q", got)
	}
	if got := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.State.Status}} {{.Name}}", id[:5])); got != "running /web" {
		t.Errorf("inspect by id prefix = %q", got)
	}
	h.MustCLI("stop", "-t", "1", "web")
	if got := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} ip={{.NetworkSettings.IPAddress}}", "web")); got != "exited 143 ip=" {
		t.Errorf("after stop: %q, want exited 143 with no address", got)
	}
	if ps := h.MustCLI("ps"); strings.Contains(ps, "web") {
		t.Errorf("ps lists a stopped container:\n%s", ps)
	}
	if ps := h.MustCLI("ps", "-a"); !strings.Contains(ps, "Exited (143)") {
		t.Errorf("ps -a:\n%s", ps)
	}
	if out := h.MustRun("ip", "-o", "link", "show", "master", "cnet0"); strings.Contains(out, "veth") {
		t.Errorf("a stopped container kept its veth: %s", out)
	}
	h.MustCLI("rm", "web")
	if _, errOut, code := h.CLI("inspect", "web"); code == 0 || !strings.Contains(errOut, "No such") {
		t.Errorf("inspect after rm: exit %d %s", code, errOut)
	}
}

func TestConcurrentRuns(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "busy")
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--name", fmt.Sprintf("c%d", i), "--net", "busy", "busybox", "sleep", "3600"); code != 0 {
				errs <- fmt.Sprintf("c%d: exit %d %s %s", i, code, out, errOut)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	net := inspectNetwork(t, h, "busy")
	seen := map[string]string{}
	for _, ep := range net.Containers {
		if other, dup := seen[ep.IPv4Address]; dup {
			t.Errorf("%s and %s share %s", other, ep.Name, ep.IPv4Address)
		}
		seen[ep.IPv4Address] = ep.Name
	}
	if len(seen) != n {
		t.Fatalf("%d distinct addresses for %d containers", len(seen), n)
	}
	// Sequential allocation: exactly .2 through .51.
	var got []string
	for ip := range seen {
		got = append(got, ip)
	}
	sort.Strings(got)
	for i := 2; i < 2+n; i++ {
		if _, ok := seen[fmt.Sprintf("172.18.0.%d/16", i)]; !ok {
			t.Errorf("172.18.0.%d was not handed out; got %v", i, got)
			break
		}
	}
}

func TestDaemonCrashRecovery(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "mybridge")
	runSleeper(t, h, "a")
	runSleeper(t, h, "b", "--net", "mybridge")
	h.MustCLI("network", "connect", "mybridge", "a")
	before := map[string]string{"a": ipOn(t, h, "a", "bridge"), "a2": ipOn(t, h, "a", "mybridge"), "b": ipOn(t, h, "b", "mybridge")}
	links := h.MustRun("ip", "-o", "link", "show")

	h.KillDaemon()
	// Containers keep running and reachable without the daemon.
	hostPing(t, h, before["a"])
	h.StartDaemon()

	after := map[string]string{"a": ipOn(t, h, "a", "bridge"), "a2": ipOn(t, h, "a", "mybridge"), "b": ipOn(t, h, "b", "mybridge")}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: address %s before the crash, %s after", k, v, after[k])
		}
	}
	if got := h.MustRun("ip", "-o", "link", "show"); countVeths(got) != countVeths(links) {
		t.Errorf("links before the crash:\n%s\nafter:\n%s", links, got)
	}
	hostPing(t, h, after["a"])
	execPing(t, h, "a", after["b"])
	// A new container gets a fresh address, never one still in use.
	runSleeper(t, h, "c", "--net", "mybridge")
	if ip := ipOn(t, h, "c", "mybridge"); ip == after["a2"] || ip == after["b"] {
		t.Errorf("new container got %s, which is in use", ip)
	}
	// A container that exits while the daemon is down is cleaned up at the next start.
	pid := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.State.Pid}}", "c"))
	h.KillDaemon()
	h.MustRun("kill", "-9", pid)
	h.StartDaemon()
	if running := strings.Fields(h.MustCLI("ps", "-q")); len(running) != 2 {
		t.Errorf("after one container died while the daemon was down, %d run: %v", len(running), running)
	}
	if got := countVeths(h.MustRun("ip", "-o", "link", "show")); got != 3 {
		t.Errorf("%d veths for 3 remaining endpoints", got)
	}
}

func countVeths(links string) int { return strings.Count(links, ": veth") }

// TestRestartRecreatesBridge removes a network's bridge while the daemon is down, as an
// administrator's `ip link del` might: the next daemon recreates it and re-plugs the
// containers with the same addresses.
func TestRestartRecreatesBridge(t *testing.T) {
	h := testenv.NewHost(t)
	id := strings.TrimSpace(h.MustCLI("network", "create", "mybridge"))
	runSleeper(t, h, "a", "--net", "mybridge")
	runSleeper(t, h, "b", "--net", "mybridge")
	ipA, ipB := ipOn(t, h, "a", "mybridge"), ipOn(t, h, "b", "mybridge")
	h.StopDaemon()
	h.MustRun("ip", "link", "del", "br-"+id[:12])
	h.MustRun("ip", "link", "del", "cnet0")
	h.StartDaemon()
	if out := h.MustRun("ip", "-o", "addr", "show", "br-"+id[:12]); !strings.Contains(out, "172.18.0.1/16") {
		t.Fatalf("bridge not recreated with its gateway: %s", out)
	}
	if out := h.MustRun("ip", "-o", "addr", "show", "cnet0"); !strings.Contains(out, "172.17.0.1/16") {
		t.Fatalf("default bridge not recreated: %s", out)
	}
	if a, b := ipOn(t, h, "a", "mybridge"), ipOn(t, h, "b", "mybridge"); a != ipA || b != ipB {
		t.Errorf("addresses changed: a %s→%s b %s→%s", ipA, a, ipB, b)
	}
	execPing(t, h, "a", ipB)
	hostPing(t, h, ipA)
	if got := countVeths(h.MustRun("ip", "-o", "link", "show")); got != 2 {
		t.Errorf("%d veths for 2 endpoints", got)
	}
}
