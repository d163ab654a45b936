package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

var (
	cnitoolOnce sync.Once
	cnitoolPath string
	cnitoolErr  error
)

// cnitool builds the reference runtime's command-line tool (github.com/containernetworking/cni
// v1.3.0's cnitool, the version in go.mod) once per test binary.
func cnitool(t testing.TB) string {
	t.Helper()
	cnitoolOnce.Do(func() {
		// Beside the cnet binary, whose directory testenv.Main removes when the tests end.
		cnitoolPath = filepath.Join(filepath.Dir(testenv.Binary(t)), "cnitool")
		if out, err := exec.Command("go", "build", "-o", cnitoolPath, "github.com/containernetworking/cni/cnitool").CombinedOutput(); err != nil {
			cnitoolErr = err
			t.Logf("%s", out)
		}
	})
	if cnitoolErr != nil {
		t.Fatalf("building cnitool: %v", cnitoolErr)
	}
	return cnitoolPath
}

// cniRuntime is cnitool set up in a test host: cnet installed as a CNI plugin, one conflist for
// a cnet network, and libcni's cache on a tmpfs of the host's own.
type cniRuntime struct {
	t    testing.TB
	h    *testenv.Host
	tool string
	dir  string
}

func newCNIRuntime(t testing.TB, h *testenv.Host, network string) *cniRuntime {
	t.Helper()
	r := &cniRuntime{t: t, h: h, tool: cnitool(t), dir: installCNIPlugin(t, h, network)}
	// libcni caches results in /var/lib/cni: a tmpfs in the host's own mount namespace keeps
	// the machine's untouched.
	h.MustRun("sh", "-c", "mkdir -p /var/lib/cni && mount -t tmpfs tmpfs /var/lib/cni")
	return r
}

// installCNIPlugin installs cnet as a CNI plugin the way the README says, under the host's
// private directory: DIR/bin/cnet (a link to the binary) and DIR/net.d/NETWORK.conflist naming
// the cnet network and the host's daemon. It returns DIR.
func installCNIPlugin(t testing.TB, h *testenv.Host, network string) string {
	t.Helper()
	dir := filepath.Join(h.Dir, "cni")
	for _, d := range []string{"bin", "net.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(h.Bin, filepath.Join(dir, "bin", "cnet")); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"1.0.0","name":"` + network + `","plugins":[{"type":"cnet","network":"` + network + `","host":"unix://` + h.Socket + `","capabilities":{"portMappings":true,"mac":true,"ips":true}}]}`
	if err := os.WriteFile(filepath.Join(dir, "net.d", network+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// netns makes a network namespace the way a runtime does, named by a file under the host's
// root; the test removes it (umount) as the runtime would.
func (r *cniRuntime) netns(name string) string {
	path := filepath.Join(r.dir, name)
	r.h.MustRun("sh", "-c", "touch "+path+" && unshare --net="+path+" true")
	r.t.Cleanup(func() { r.h.Run("umount", path) })
	return path
}

// run runs cnitool COMMAND NETWORK NETNS as the runtime would, with the pod's name in CNI_ARGS.
func (r *cniRuntime) run(command, network, netns, pod string) (string, error) {
	return r.runCap(command, network, netns, pod, "{}")
}

// runCap is run with capability arguments (CAP_ARGS: runtimeConfig, e.g. portMappings).
func (r *cniRuntime) runCap(command, network, netns, pod, capArgs string) (string, error) {
	cmd := r.h.Cmd("env", "NETCONFPATH="+filepath.Join(r.dir, "net.d"), "CNI_PATH="+filepath.Join(r.dir, "bin"),
		"CNI_IFNAME=eth0", "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME="+pod, "CAP_ARGS="+capArgs, r.tool, command, network, netns)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCNIWithCnitool: a namespace made by another runtime (the reference cnitool) joins a
// cnet network through cnet's CNI plugin: it gets an address from cnet's IPAM, reaches a cnet
// container and is reached from it by address and by its pod name through cnet's resolver;
// CHECK passes; DEL removes it, and a second DEL succeeds; nothing is left.
func TestCNIWithCnitool(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--subnet", "10.77.0.0/24", "cninet")
	runSleeper(t, h, "c1", "--network", "cninet")
	r := newCNIRuntime(t, h, "cninet")
	ns := r.netns("pod1ns")

	out, err := r.run("add", "cninet", ns, "pod1")
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	var res struct {
		CNIVersion string
		Interfaces []struct{ Name, Mac, Sandbox string }
		IPs        []struct{ Address, Gateway string }
		DNS        struct{ Nameservers []string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("cnitool add printed %q: %v", out, err)
	}
	if res.CNIVersion != "1.0.0" || len(res.Interfaces) != 1 || res.Interfaces[0].Name != "eth0" || res.Interfaces[0].Sandbox != ns ||
		len(res.IPs) != 1 || !strings.HasPrefix(res.IPs[0].Address, "10.77.0.") || res.IPs[0].Gateway != "10.77.0.1" ||
		len(res.DNS.Nameservers) != 1 || res.DNS.Nameservers[0] != "127.0.0.11" {
		t.Fatalf("ADD result: %s", out)
	}
	podIP := strings.SplitN(res.IPs[0].Address, "/", 2)[0]
	if link := h.MustRun("nsenter", "--net="+ns, "ip", "-o", "link", "show", "eth0"); !strings.Contains(link, res.Interfaces[0].Mac) {
		t.Errorf("eth0 in the runtime's namespace lacks the MAC of the result %s: %s", res.Interfaces[0].Mac, link)
	}

	// Both ways, by address and by name.
	execPing(t, h, "c1", podIP)
	execPing(t, h, "c1", "pod1")
	if out, err := h.Run("nsenter", "--net="+ns, "busybox", "ping", "-c1", "-W2", ipOn(t, h, "c1", "cninet")); err != nil {
		t.Errorf("the CNI namespace cannot ping c1: %v\n%s", err, out)
	}
	if out, err := h.Run("nsenter", "--net="+ns, "busybox", "nslookup", "c1", "127.0.0.11"); err != nil || !strings.Contains(out, ipOn(t, h, "c1", "cninet")) {
		t.Errorf("the CNI namespace cannot resolve c1 through cnet's resolver: %v\n%s", err, out)
	}
	if out, err := r.run("check", "cninet", ns, "pod1"); err != nil {
		t.Errorf("cnitool check: %v\n%s", err, out)
	}
	// Inspect lists the runtime's container under the runtime's own ID, with its name.
	found := false
	for id, e := range inspectNetwork(t, h, "cninet").Containers {
		if strings.HasPrefix(id, "cnitool-") && e.Name == "pod1" && e.IPv4Address == res.IPs[0].Address && e.MacAddress == res.Interfaces[0].Mac {
			found = true
		}
	}
	if !found {
		t.Errorf("inspect cninet does not list pod1 under cnitool's container ID: %+v", inspectNetwork(t, h, "cninet").Containers)
	}
	// GC (CNI 1.1.0), as libcni sends it: an attachment the runtime no longer lists goes,
	// the listed one stays.
	ns4 := r.netns("pod4ns")
	if out, err := r.run("add", "cninet", ns4, "pod4"); err != nil {
		t.Fatalf("cnitool add pod4: %v\n%s", err, out)
	}
	var pod1ID string
	for id, e := range inspectNetwork(t, h, "cninet").Containers {
		if e.Name == "pod1" {
			pod1ID = id
		}
	}
	gc := h.Cmd("env", "CNI_COMMAND=GC", "CNI_PATH="+filepath.Join(r.dir, "bin"), h.Bin)
	gc.Stdin = strings.NewReader(`{"cniVersion":"1.1.0","name":"cninet","type":"cnet","network":"cninet","host":"unix://` + h.Socket +
		`","cni.dev/valid-attachments":[{"containerID":"` + pod1ID + `","ifname":"eth0"}]}`)
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("GC: %v\n%s", err, out)
	}
	names := map[string]bool{}
	for _, e := range inspectNetwork(t, h, "cninet").Containers {
		names[e.Name] = true
	}
	if !names["pod1"] || names["pod4"] || !names["c1"] {
		t.Errorf("after GC listing pod1 only, cninet holds %v, want c1 and pod1", names)
	}
	if link, err := h.Run("nsenter", "--net="+ns4, "ip", "-o", "link", "show", "eth0"); err == nil {
		t.Errorf("GC left eth0 in pod4's namespace: %s", link)
	}

	// The attachment is cnet's own across a daemon restart, as its containers are.
	h.StopDaemon()
	h.WaitDaemonGone()
	h.StartDaemon()
	execPing(t, h, "c1", "pod1")
	if out, err := r.run("check", "cninet", ns, "pod1"); err != nil {
		t.Errorf("cnitool check after a daemon restart: %v\n%s", err, out)
	}

	for i := 0; i < 2; i++ {
		if out, err := r.run("del", "cninet", ns, "pod1"); err != nil {
			t.Fatalf("cnitool del (%d): %v\n%s", i+1, err, out)
		}
	}
	if out, _, code := h.CLI("exec", "c1", "busybox", "ping", "-c1", "-W1", "pod1"); code == 0 {
		t.Errorf("pod1 still resolves and answers after DEL:\n%s", out)
	}
	if link, err := h.Run("nsenter", "--net="+ns, "ip", "-o", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 is still in the runtime's namespace after DEL: %s", link)
	}
	if n := inspectNetwork(t, h, "cninet"); len(n.Containers) != 1 {
		t.Errorf("cninet after DEL holds %d endpoints, want c1's only", len(n.Containers))
	}

	// portMappings: a port of the pod published on the host, reached from a cnet container
	// through the host (the network's gateway address).
	ns3 := r.netns("pod3ns")
	if out, err := r.runCap("add", "cninet", ns3, "pod3", `{"portMappings":[{"hostPort":8083,"containerPort":80,"protocol":"tcp"}],"mac":"02:00:00:aa:bb:cc"}`); err != nil {
		t.Fatalf("cnitool add pod3 with a port mapping and a MAC: %v\n%s", err, out)
	} else if !strings.Contains(out, `"mac": "02:00:00:aa:bb:cc"`) {
		t.Errorf("pod3's result does not carry the requested MAC:\n%s", out)
	}
	if link := h.MustRun("nsenter", "--net="+ns3, "ip", "-o", "link", "show", "eth0"); !strings.Contains(link, "02:00:00:aa:bb:cc") {
		t.Errorf("pod3's eth0 lacks the requested MAC: %s", link)
	}
	www := filepath.Join(h.Dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("served by pod3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpd := h.Cmd("nsenter", "--net="+ns3, "busybox", "httpd", "-f", "-p", "80", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = httpd.Process.Kill(); _ = httpd.Wait() })
	c1pid := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.State.Pid}}", "c1"))
	waitFor(t, "pod3's published port from c1", func() bool {
		out, err := httpGet(h, c1pid, "10.77.0.1", "8083")
		return err == nil && strings.Contains(out, "served by pod3")
	})
	if out, err := r.run("del", "cninet", ns3, "pod3"); err != nil {
		t.Fatalf("cnitool del pod3: %v\n%s", err, out)
	}
	if out, err := httpGet(h, c1pid, "10.77.0.1", "8083"); err == nil && strings.Contains(out, "served by pod3") {
		t.Errorf("pod3's port still answers after DEL")
	}

	// A runtime that deletes its namespace while the daemon is down (the DEL never comes):
	// the next start drops the attachment and frees its address.
	ns2 := r.netns("pod2ns")
	if out, err := r.run("add", "cninet", ns2, "pod2"); err != nil {
		t.Fatalf("cnitool add pod2: %v\n%s", err, out)
	}
	execPing(t, h, "c1", "pod2")
	h.StopDaemon()
	h.WaitDaemonGone()
	h.MustRun("umount", ns2)
	h.StartDaemon()
	if n := inspectNetwork(t, h, "cninet"); len(n.Containers) != 1 {
		t.Errorf("cninet after pod2's namespace went with the daemon down holds %d endpoints, want c1's only", len(n.Containers))
	}
	if out, _, code := h.CLI("exec", "c1", "busybox", "ping", "-c1", "-W1", "pod2"); code == 0 {
		t.Errorf("pod2 still answers after its namespace went:\n%s", out)
	}

	// The same with the daemon running: it notices within seconds.
	ns5 := r.netns("pod5ns")
	if out, err := r.run("add", "cninet", ns5, "pod5"); err != nil {
		t.Fatalf("cnitool add pod5: %v\n%s", err, out)
	}
	h.MustRun("umount", ns5)
	waitFor(t, "pod5's attachment to go with its namespace", func() bool {
		return len(inspectNetwork(t, h, "cninet").Containers) == 1
	})
	if out, err := r.run("del", "cninet", ns5, "pod5"); err != nil {
		t.Errorf("cnitool del of a reaped attachment: %v\n%s", err, out)
	}
}
