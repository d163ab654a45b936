package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// cniPort is the port mapping the crash tests ask for, so that ADD passes ports-published.
const cniPort = `{"portMappings":[{"hostPort":8085,"containerPort":80,"protocol":"tcp"}]}`

// TestCNICrash kills the daemon (SIGKILL) at every step of a CNI ADD and DEL, restarts it, and
// does what a runtime does after a failed command: DEL again. Whatever the step, the DEL
// succeeds and leaves nothing (no endpoint, veth, namespace bind, published port or record),
// and a new ADD of the same container works and is reached by name.
func TestCNICrash(t *testing.T) {
	for _, point := range faults.CNIPoints {
		t.Run(point, func(t *testing.T) {
			h := testenv.NewHost(t)
			h.MustCLI("network", "create", "--subnet", "10.79.0.0/24", "crashcni")
			runSleeper(t, h, "c1", "--network", "crashcni")
			r := newCNIRuntime(t, h, "crashcni")
			ns := r.netns("podns")
			del := point == "endpoint-unplugged" || point == "cni-released"
			if del {
				if out, err := r.runCap("add", "crashcni", ns, "pod1", cniPort); err != nil {
					t.Fatalf("cnitool add: %v\n%s", err, out)
				}
			}
			h.StopDaemon()
			h.WaitDaemonGone()
			h.StartDaemonEnv([]string{faults.Env + "=" + point})
			cmd := "add"
			if del {
				cmd = "del"
			}
			if out, err := r.runCap(cmd, "crashcni", ns, "pod1", cniPort); err == nil {
				t.Fatalf("cnitool %s succeeded: the daemon did not crash at %s\n%s", cmd, point, out)
			}
			h.WaitDaemonGone()
			h.StartDaemon()

			if out, err := r.runCap("del", "crashcni", ns, "pod1", cniPort); err != nil {
				t.Fatalf("cnitool del after the restart: %v\n%s", err, out)
			}
			checkCNIClean(t, h, "crashcni", ns)

			if out, err := r.runCap("add", "crashcni", ns, "pod1", cniPort); err != nil {
				t.Fatalf("cnitool add after the restart: %v\n%s", err, out)
			}
			if a, b := ipOn(t, h, "c1", "crashcni"), podIP(t, h, "crashcni", "pod1"); a == b {
				t.Errorf("pod1 got %s, c1's address", b)
			}
			execPing(t, h, "c1", "pod1")
			if out, err := r.runCap("del", "crashcni", ns, "pod1", cniPort); err != nil {
				t.Fatalf("cnitool del: %v\n%s", err, out)
			}
			checkCNIClean(t, h, "crashcni", ns)
		})
	}
}

// TestCNIWhileDaemonDown: a runtime that deletes containers while the daemon is down is told
// DEL and GC succeeded, and the daemon's next start does them before it answers anything
// else: the attachments go from the namespaces and the network, and nothing stays pending.
func TestCNIWhileDaemonDown(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--subnet", "10.80.0.0/24", "downnet")
	runSleeper(t, h, "c1", "--network", "downnet")
	r := newCNIRuntime(t, h, "downnet")
	nss := map[string]string{}
	for _, pod := range []string{"pod1", "pod2", "pod3"} {
		nss[pod] = r.netns(pod + "ns")
		if out, err := r.run("add", "downnet", nss[pod], pod); err != nil {
			t.Fatalf("cnitool add %s: %v\n%s", pod, err, out)
		}
	}
	pod3ID := ""
	for id, e := range inspectNetwork(t, h, "downnet").Containers {
		if e.Name == "pod3" {
			pod3ID = id
		}
	}

	h.StopDaemon()
	h.WaitDaemonGone()
	if out, err := r.run("del", "downnet", nss["pod1"], "pod1"); err != nil {
		t.Fatalf("cnitool del with the daemon down: %v\n%s", err, out)
	}
	gc := h.Cmd("env", "CNI_COMMAND=GC", "CNI_PATH="+filepath.Join(r.dir, "bin"), h.Bin)
	gc.Stdin = strings.NewReader(`{"cniVersion":"1.1.0","name":"downnet","type":"cnet","network":"downnet","host":"unix://` + h.Socket +
		`","cni.dev/valid-attachments":[{"containerID":"` + pod3ID + `","ifname":"eth0"}]}`)
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("GC with the daemon down: %v\n%s", err, out)
	}
	h.StartDaemon()

	names := map[string]bool{}
	for _, e := range inspectNetwork(t, h, "downnet").Containers {
		names[e.Name] = true
	}
	if len(names) != 2 || !names["c1"] || !names["pod3"] {
		t.Errorf("after DEL pod1 and GC keeping pod3 with the daemon down, downnet holds %v, want c1 and pod3", names)
	}
	for _, pod := range []string{"pod1", "pod2"} {
		if link, err := h.Run("nsenter", "--net="+nss[pod], "ip", "-o", "link", "show", "eth0"); err == nil {
			t.Errorf("%s's eth0 is still in its namespace: %s", pod, link)
		}
	}
	execPing(t, h, "c1", "pod3")
	if left, _ := os.ReadDir(filepath.Join(filepath.Dir(h.Socket), "cni-pending")); len(left) != 0 {
		t.Errorf("%d pending requests left after the start", len(left))
	}
	if out, err := r.run("del", "downnet", nss["pod3"], "pod3"); err != nil {
		t.Fatalf("cnitool del pod3: %v\n%s", err, out)
	}
}

// checkCNIClean checks that network holds c1 only, and that the host has nothing of a CNI
// attachment left: c1's veth alone, c1's namespace bind alone, no published port, and no
// interface in the runtime's namespace ns.
func checkCNIClean(t *testing.T, h *testenv.Host, network, ns string) {
	t.Helper()
	if n := inspectNetwork(t, h, network); len(n.Containers) != 1 {
		t.Errorf("%s holds %d endpoints, want c1's only: %+v", network, len(n.Containers), n.Containers)
	}
	if veths := countVeths(h.MustRun("ip", "-o", "link", "show")); veths != 1 {
		t.Errorf("%d veths on the host, want c1's only", veths)
	}
	if binds, _ := h.Run("ls", h.Dir+"/exec/netns"); len(strings.Fields(binds)) != 1 {
		t.Errorf("namespace files %q, want c1's only", binds)
	}
	if ports := h.MustRun("nft", "list", "map", "ip", "cnet", "ports_any"); strings.Contains(ports, "8085") {
		t.Errorf("the pod's published port is still in the firewall:\n%s", ports)
	}
	if link, err := h.Run("nsenter", "--net="+ns, "ip", "-o", "link", "show", "eth0"); err == nil {
		t.Errorf("eth0 is still in the runtime's namespace: %s", link)
	}
}

// podIP is the address of the CNI attachment named pod on network.
func podIP(t *testing.T, h *testenv.Host, network, pod string) string {
	t.Helper()
	for _, e := range inspectNetwork(t, h, network).Containers {
		if e.Name == pod {
			return strings.SplitN(e.IPv4Address, "/", 2)[0]
		}
	}
	t.Fatalf("%s is not on %s", pod, network)
	return ""
}

// writeConflist adds a conflist NAME to the runtime's configuration directory with these
// plugins (JSON objects).
func (r *cniRuntime) writeConflist(name string, plugins ...string) {
	r.t.Helper()
	conf := `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[` + strings.Join(plugins, ",") + `]}`
	if err := os.WriteFile(filepath.Join(r.dir, "net.d", name+".conflist"), []byte(conf), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// TestCNIChainAndErrors: cnet first in a chain with the reference tuning plugin, which gets
// cnet's result as prevResult and changes the interface (CHECK and DEL pass down the chain);
// and the errors a runtime shows its user, end to end: a network cnet does not have, and a
// network with no address left, each leaving nothing behind.
func TestCNIChainAndErrors(t *testing.T) {
	if _, err := os.Stat(filepath.Join(referenceCNIDir, "tuning")); err != nil {
		t.Skipf("the reference tuning plugin (Debian's containernetworking-plugins) is not installed: %v", err)
	}
	h := testenv.NewHost(t)
	h.MustCLI("network", "create", "--subnet", "10.84.0.0/24", "chainnet")
	h.MustCLI("network", "create", "--subnet", "10.85.0.0/30", "tiny")
	r := newCNIRuntime(t, h, "chainnet")
	if err := os.Symlink(filepath.Join(referenceCNIDir, "tuning"), filepath.Join(r.dir, "bin", "tuning")); err != nil {
		t.Fatal(err)
	}
	cnetOn := func(network string) string {
		return `{"type":"cnet","network":"` + network + `","host":"unix://` + h.Socket + `"}`
	}
	r.writeConflist("chained", cnetOn("chainnet"), `{"type":"tuning","mtu":1400}`)
	r.writeConflist("nosuch", cnetOn("nosuch"))
	r.writeConflist("tiny", cnetOn("tiny"))

	ns := r.netns("chainns")
	if out, err := r.run("add", "chained", ns, "pod1"); err != nil {
		t.Fatalf("cnitool add through cnet then tuning: %v\n%s", err, out)
	} else if !strings.Contains(out, `"address": "10.84.0.`) {
		t.Errorf("the chain's result lost cnet's address:\n%s", out)
	}
	if link := h.MustRun("nsenter", "--net="+ns, "ip", "-o", "link", "show", "eth0"); !strings.Contains(link, "mtu 1400") {
		t.Errorf("tuning did not get cnet's interface as prevResult (mtu not 1400): %s", link)
	}
	if out, err := r.run("check", "chained", ns, "pod1"); err != nil {
		t.Errorf("cnitool check of the chain: %v\n%s", err, out)
	}
	if out, err := r.run("del", "chained", ns, "pod1"); err != nil {
		t.Fatalf("cnitool del of the chain: %v\n%s", err, out)
	}
	if n := inspectNetwork(t, h, "chainnet"); len(n.Containers) != 0 {
		t.Errorf("chainnet after DEL holds %+v", n.Containers)
	}

	if out, err := r.run("add", "nosuch", r.netns("nosuchns"), "pod2"); err == nil {
		t.Errorf("cnitool add on a network cnet does not have succeeded:\n%s", out)
	} else if !strings.Contains(out, "nosuch") || !strings.Contains(out, "not found") {
		t.Errorf("cnitool add on a network cnet does not have says %q, want the network and \"not found\"", out)
	}
	// A /30 has one address after its gateway: the second container is refused, and its
	// failed ADD leaves neither an endpoint nor an interface.
	ns3, ns4 := r.netns("tiny3"), r.netns("tiny4")
	if out, err := r.run("add", "tiny", ns3, "pod3"); err != nil {
		t.Fatalf("cnitool add pod3 on tiny: %v\n%s", err, out)
	}
	out, err := r.run("add", "tiny", ns4, "pod4")
	if err == nil {
		t.Fatalf("a second ADD on a /30 succeeded:\n%s", out)
	}
	t.Logf("cnitool add on a full network: %s", out)
	if !strings.Contains(out, "tiny") || !strings.Contains(out, "address") {
		t.Errorf("the error of a full network names neither it nor its addresses: %s", out)
	}
	if n := inspectNetwork(t, h, "tiny"); len(n.Containers) != 1 {
		t.Errorf("tiny after a refused ADD holds %d endpoints, want pod3's only", len(n.Containers))
	}
	if link, err := h.Run("nsenter", "--net="+ns4, "ip", "-o", "link", "show", "eth0"); err == nil {
		t.Errorf("a refused ADD left eth0 in the namespace: %s", link)
	}
	if out, err := r.run("del", "tiny", ns3, "pod3"); err != nil {
		t.Fatalf("cnitool del pod3: %v\n%s", err, out)
	}
}
