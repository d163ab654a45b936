package integration

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/testenv"
)

// segment is a stand-in for a physical Ethernet segment: a veth pair whose end `parent`
// stays in the host as the macvlan parent and whose peer sits in a "client host" namespace
// with its own address, so that containers can be shown to talk to another machine on
// their segment with real packets.
//
// The client namespace is held by a process inside the host rather than made with
// `ip netns add`, which would leave a file in the machine's /run/netns: this way it dies
// with the host whatever happens, and nothing of it exists outside.
type segment struct {
	h      *testenv.Host
	parent string
	pid    string // of the process holding the client namespace, in the host's PID namespace
}

// newSegment builds the segment; clientAddr (CIDR) goes on the client's end, none if "".
// Its cleanup is registered after testenv.NewHost's, so it runs before the host's leak check,
// which must not find the test's own links.
func newSegment(t *testing.T, h *testenv.Host, parent, clientAddr string) *segment {
	t.Helper()
	peer := parent + "p"
	h.MustRun("ip", "link", "add", parent, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _, _ = h.Run("ip", "link", "del", parent) })
	pid := strings.TrimSpace(h.MustRun("sh", "-c", "unshare --net sleep 3600 >/dev/null 2>&1 & echo $!"))
	t.Cleanup(func() { _, _ = h.Run("kill", pid) })
	// unshare execs sleep once the namespace is made: wait for that before moving the peer.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if comm, _ := h.Run("cat", "/proc/"+pid+"/comm"); strings.TrimSpace(comm) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client namespace (pid %s) did not come up", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := &segment{h: h, parent: parent, pid: pid}
	h.MustRun("ip", "link", "set", peer, "netns", pid)
	s.client(t, "ip", "link", "set", "lo", "up")
	s.client(t, "ip", "link", "set", peer, "up")
	if clientAddr != "" {
		s.client(t, "ip", "addr", "add", clientAddr, "dev", peer)
	}
	h.MustRun("ip", "link", "set", parent, "up")
	return s
}

// client runs a command in the client namespace and fails the test if it fails.
func (s *segment) client(t *testing.T, args ...string) string {
	t.Helper()
	return s.h.MustRun("nsenter", append([]string{"-t", s.pid, "-n"}, args...)...)
}

// clientPing pings from the client host.
func (s *segment) clientPing(t *testing.T, ip string) {
	t.Helper()
	if out, err := s.h.Run("nsenter", "-t", s.pid, "-n", "busybox", "ping", "-c", "1", "-W", "2", ip); err != nil {
		t.Fatalf("the client cannot ping %s: %v\n%s", ip, err, out)
	}
}

// noPing checks that a ping from a container does not get through.
func noPing(t *testing.T, h *testenv.Host, name, ip string) {
	t.Helper()
	if out, _, code := h.CLI("exec", name, "busybox", "ping", "-c", "1", "-W", "1", ip); code == 0 {
		t.Errorf("%s reached %s, want it cut off:\n%s", name, ip, out)
	}
}

// hostLinks lists the host's links by name.
func hostLinks(t *testing.T, h *testenv.Host) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(h.MustRun("ip", "-o", "link", "show")), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			names = append(names, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return names
}

// TestMacvlanSeed is seed 004's macvlan walkthrough, with a veth segment for the NIC and a
// client host on it.
func TestMacvlanSeed(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "ext0", "192.168.57.100/24")
	linksBefore := strings.Join(hostLinks(t, h), " ")
	id := strings.TrimSpace(h.MustCLI("network", "create", "-d", "macvlan", "--subnet=192.168.57.0/24", "--gateway=192.168.57.1",
		"--ip-range=192.168.57.0/24", "-o", "parent=ext0", "macvlan1"))
	if ls := h.MustCLI("network", "ls"); !strings.Contains(ls, id[:12]+"   macvlan1   macvlan   local") {
		t.Errorf("network ls:\n%s", ls)
	}
	n := inspectNetwork(t, h, "macvlan1")
	if n.Driver != "macvlan" || n.Internal || n.Options["parent"] != "ext0" || len(n.Options) != 1 ||
		len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "192.168.57.0/24" || n.IPAM.Config[0].Gateway != "192.168.57.1" {
		t.Errorf("inspect macvlan1: %+v", n)
	}
	runSleeper(t, h, "mac-nasa", "--network", "macvlan1")
	runSleeper(t, h, "mac-nasa2", "--network", "macvlan1")
	for name, want := range map[string][2]string{"mac-nasa": {"192.168.57.2", "02:42:c0:a8:39:02"}, "mac-nasa2": {"192.168.57.3", "02:42:c0:a8:39:03"}} {
		es := inspectContainer(t, h, name).NetworkSettings.Networks["macvlan1"]
		if es == nil || es.IPAddress != want[0] || es.MacAddress != want[1] || es.IPPrefixLen != 24 || es.Gateway != "192.168.57.1" {
			t.Fatalf("%s on macvlan1: %+v, want %s with %s", name, es, want[0], want[1])
		}
		addr := h.MustCLI("exec", name, "busybox", "ip", "-o", "addr", "show", "eth0")
		if !strings.Contains(addr, want[0]+"/24") {
			t.Errorf("eth0 in %s: %s", name, addr)
		}
		link := h.MustCLI("exec", name, "ip", "-d", "-o", "link", "show", "eth0")
		if !strings.Contains(link, "link/ether "+want[1]) || !strings.Contains(link, "macvlan mode bridge") || !strings.Contains(link, "eth0@if") {
			t.Errorf("eth0 in %s is not a bridge-mode macvlan with its MAC: %s", name, link)
		}
		if route := h.MustCLI("exec", name, "busybox", "ip", "route"); !strings.Contains(route, "default via 192.168.57.1 dev eth0") {
			t.Errorf("routes in %s:\n%s", name, route)
		}
	}
	// The macvlans live only in the sandboxes: the host's links are as before.
	if got := strings.Join(hostLinks(t, h), " "); got != linksBefore {
		t.Errorf("host links %q, want %q", got, linksBefore)
	}
	execPing(t, h, "mac-nasa", "192.168.57.3")
	execPing(t, h, "mac-nasa2", "192.168.57.2")
	execPing(t, h, "mac-nasa", "192.168.57.100")
	seg.clientPing(t, "192.168.57.2")
	seg.clientPing(t, "192.168.57.3")
	// A static --ip, as on a bridge network.
	runSleeper(t, h, "static", "--network", "macvlan1", "--ip", "192.168.57.50")
	if ip := ipOn(t, h, "static", "macvlan1"); ip != "192.168.57.50" {
		t.Errorf("static got %s", ip)
	}
	seg.clientPing(t, "192.168.57.50")

	// The host cannot reach its own macvlan containers through the parent (a kernel property,
	// documented), even with an address on the segment.
	h.MustRun("ip", "addr", "add", "192.168.57.200/24", "dev", "ext0")
	if out, err := h.Run("busybox", "ping", "-c", "1", "-W", "1", "192.168.57.2"); err == nil {
		t.Errorf("the host reached its macvlan container, which the kernel does not allow:\n%s", out)
	}
	h.MustRun("ip", "addr", "del", "192.168.57.200/24", "dev", "ext0")

	if _, errOut, code := h.CLI("network", "rm", "macvlan1"); code == 0 || !strings.Contains(errOut, "has active endpoints") {
		t.Errorf("rm of a network in use: exit %d %s", code, errOut)
	}
	h.MustCLI("rm", "-f", "mac-nasa", "mac-nasa2", "static")
	h.MustCLI("network", "rm", "macvlan1")
	if got := strings.Join(hostLinks(t, h), " "); got != "lo cnet0 ext0" {
		t.Errorf("after network rm the host has %q, want lo cnet0 ext0 (ext0 is the user's)", got)
	}
	seg.client(t, "ip", "link", "show", "ext0p")
}

// TestMacvlanModes checks each -o macvlan_mode: the kernel mode of the interface, and, on a
// segment with no switch to send frames back, who can talk to whom.
func TestMacvlanModes(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "ext0", "192.168.57.100/24")
	for _, mode := range []string{"bridge", "private", "vepa", "passthru"} {
		t.Run(mode, func(t *testing.T) {
			h.MustCLI("network", "create", "-d", "macvlan", "--subnet", "192.168.57.0/24", "-o", "parent=ext0", "-o", "macvlan_mode="+mode, "m-"+mode)
			defer h.CLI("network", "rm", "m-"+mode)
			defer h.CLI("rm", "-f", "a", "b")
			runSleeper(t, h, "a", "--network", "m-"+mode)
			if link := h.MustCLI("exec", "a", "ip", "-d", "-o", "link", "show", "eth0"); !strings.Contains(link, "macvlan mode "+mode) {
				t.Errorf("eth0: %s", link)
			}
			execPing(t, h, "a", "192.168.57.100")
			seg.clientPing(t, "192.168.57.2")
			if mode == "passthru" {
				// One container takes over the parent: a second is refused and left as
				// created, its start undone.
				_, errOut, code := h.CLI("run", "--rootfs", "/", "-d", "--name", "b", "--network", "m-"+mode, "busybox", "sleep", "3600")
				if code == 0 || !strings.Contains(errOut, "passthru mode: its parent ext0 carries one container at a time") {
					t.Errorf("second container in passthru mode: exit %d %s", code, errOut)
				}
				execPing(t, h, "a", "192.168.57.100")
				return
			}
			runSleeper(t, h, "b", "--network", "m-"+mode)
			if mode == "bridge" {
				execPing(t, h, "a", "192.168.57.3")
			} else {
				// private never passes frames between siblings; vepa sends them to the
				// switch, and a veth peer does not send them back.
				noPing(t, h, "a", "192.168.57.3")
			}
		})
	}
}

// TestMacvlanParentSubnet: without --subnet a macvlan network takes its parent's subnet,
// the segment's router as gateway, and keeps the host's own address out of the pool.
func TestMacvlanParentSubnet(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "ext0", "192.168.58.1/24")
	h.MustRun("ip", "addr", "add", "192.168.58.2/24", "dev", "ext0")
	h.MustRun("ip", "route", "add", "default", "via", "192.168.58.1", "dev", "ext0")
	h.MustCLI("network", "create", "-d", "macvlan", "-o", "parent=ext0", "lan")
	n := inspectNetwork(t, h, "lan")
	if len(n.IPAM.Config) != 1 || n.IPAM.Config[0].Subnet != "192.168.58.0/24" || n.IPAM.Config[0].Gateway != "192.168.58.1" ||
		n.IPAM.Config[0].AuxiliaryAddresses["ext0"] != "192.168.58.2" {
		t.Fatalf("lan IPAM = %+v, want ext0's 192.168.58.0/24 via the router 192.168.58.1, with the host's .2 reserved", n.IPAM.Config)
	}
	runSleeper(t, h, "c1", "--network", "lan")
	if ip := ipOn(t, h, "c1", "lan"); ip != "192.168.58.3" {
		t.Errorf("c1 got %s, want 192.168.58.3 (.1 is the router, .2 the host)", ip)
	}
	if route := h.MustCLI("exec", "c1", "busybox", "ip", "route"); !strings.Contains(route, "default via 192.168.58.1 dev eth0") {
		t.Errorf("routes in c1:\n%s", route)
	}
	execPing(t, h, "c1", "192.168.58.1")
	seg.clientPing(t, "192.168.58.3")
	h.MustCLI("rm", "-f", "c1")
	h.MustCLI("network", "rm", "lan")
}

// TestMacvlanInternal: without a parent the network is internal, on a bridge of cnet's own
// that goes with it.
func TestMacvlanInternal(t *testing.T) {
	h := testenv.NewHost(t)
	id := strings.TrimSpace(h.MustCLI("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "inner"))
	if n := inspectNetwork(t, h, "inner"); !n.Internal || n.IPAM.Config[0].Subnet != "10.77.0.0/24" {
		t.Errorf("inner: internal %v IPAM %+v", n.Internal, n.IPAM.Config)
	}
	if out := h.MustRun("ip", "-d", "-o", "link", "show", "mv-"+id[:12]); !strings.Contains(out, "bridge") || !strings.Contains(out, "state UNKNOWN") && !strings.Contains(out, "state UP") {
		t.Errorf("the internal parent: %s", out)
	}
	runSleeper(t, h, "a", "--network", "inner")
	runSleeper(t, h, "b", "--network", "inner")
	execPing(t, h, "a", "10.77.0.3")
	execPing(t, h, "b", "10.77.0.2")
	if route := h.MustCLI("exec", "a", "busybox", "ip", "route"); strings.Contains(route, "default") {
		t.Errorf("a container on an internal network has a default route:\n%s", route)
	}
	h.MustCLI("rm", "-f", "a", "b")
	h.MustCLI("network", "rm", "inner")
	if got := strings.Join(hostLinks(t, h), " "); got != "lo cnet0" {
		t.Errorf("after network rm the host has %q", got)
	}
}

// TestMacvlanVLAN asks for parent=ext0.100. Where the kernel has 802.1q, cnet creates the
// sub-interface and deletes it with the network; where it has not, the refusal says so and
// leaves nothing, and the test is skipped.
func TestMacvlanVLAN(t *testing.T) {
	h := testenv.NewHost(t)
	newSegment(t, h, "ext0", "")
	before := state(t, h)
	_, errOut, code := h.CLI("network", "create", "-d", "macvlan", "--subnet", "192.168.100.0/24", "-o", "parent=ext0.100", "vlan100")
	if code != 0 {
		if !strings.Contains(errOut, "this kernel has no 802.1q VLAN support (module 8021q)") {
			t.Fatalf("network create on ext0.100: exit %d %s", code, errOut)
		}
		if after := state(t, h); after != before {
			t.Errorf("the refused create changed the state:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		t.Skipf("this kernel has no 802.1q VLAN support (module 8021q), so a VLAN parent cannot be created; the refusal was checked: %s", strings.TrimSpace(errOut))
	}
	if out := h.MustRun("ip", "-d", "-o", "link", "show", "ext0.100"); !strings.Contains(out, "vlan protocol 802.1Q id 100") {
		t.Errorf("ext0.100: %s", out)
	}
	runSleeper(t, h, "c1", "--network", "vlan100")
	h.MustCLI("rm", "-f", "c1")
	h.MustCLI("network", "rm", "vlan100")
	if got := strings.Join(hostLinks(t, h), " "); got != "lo cnet0 ext0" {
		t.Errorf("after network rm the host has %q, want the VLAN cnet created gone", got)
	}
}

// TestMacvlanRefusals: each refusal is clear and changes nothing.
func TestMacvlanRefusals(t *testing.T) {
	h := testenv.NewHost(t)
	newSegment(t, h, "ext0", "")
	newSegment(t, h, "ext1", "")
	h.MustCLI("network", "create", "-d", "macvlan", "--subnet", "192.168.57.0/24", "-o", "parent=ext0", "macvlan1")
	before := state(t, h)
	create := func(args ...string) []string {
		return append([]string{"network", "create", "-d", "macvlan"}, args...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing parent", create("--subnet", "10.1.0.0/24", "-o", "parent=nosuch0", "x1"), "parent interface nosuch0 of macvlan network x1 not found on the host"},
		{"missing vlan base", create("--subnet", "10.1.0.0/24", "-o", "parent=nosuch0.5", "x1"), "neither nosuch0.5 nor nosuch0"},
		{"bad mode", create("--subnet", "10.1.0.0/24", "-o", "parent=ext1", "-o", "macvlan_mode=fast", "x2"), `invalid macvlan_mode "fast": want bridge (the default), private, vepa or passthru`},
		{"bad vlan id", create("--subnet", "10.1.0.0/24", "-o", "parent=ext1.4095", "x3"), `the VLAN id "4095" must be a number from 1 to 4094`},
		{"vlan id 0", create("--subnet", "10.1.0.0/24", "-o", "parent=ext1.0", "x3"), `the VLAN id "0"`},
		{"loopback parent", create("--subnet", "10.1.0.0/24", "-o", "parent=lo", "x4"), "loopback interface cannot be a macvlan parent"},
		{"shared parent", create("--subnet", "10.2.0.0/24", "-o", "parent=ext0", "x5"), "macvlan network macvlan1 is already using parent interface ext0"},
		{"no subnet, no address", create("-o", "parent=ext1", "x6"), "macvlan network x6 needs --subnet: its parent ext1 has no IPv4 address"},
		{"overlapping subnet", create("--subnet", "192.168.57.0/25", "-o", "parent=ext1", "x7"), "overlaps"},
		{"empty parent", create("-o", "parent=", "x8"), "invalid parent: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRefused(t, h, tt.args, tt.want)
			if after := state(t, h); after != before {
				t.Errorf("state changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// The API answers with the status of the kind of refusal.
	cl := h.API()
	subnet := &api.IPAM{Config: []api.IPAMConfig{{Subnet: "10.1.0.0/24"}}}
	for _, tt := range []struct {
		why    string
		req    api.NetworkCreateRequest
		status int
	}{
		{"bad mode", api.NetworkCreateRequest{IPAM: subnet, Options: map[string]string{"parent": "ext1", "macvlan_mode": "fast"}}, http.StatusBadRequest},
		{"missing parent", api.NetworkCreateRequest{IPAM: subnet, Options: map[string]string{"parent": "nosuch0"}}, http.StatusNotFound},
		{"shared parent", api.NetworkCreateRequest{IPAM: subnet, Options: map[string]string{"parent": "ext0"}}, http.StatusConflict},
		{"no subnet, no address", api.NetworkCreateRequest{Options: map[string]string{"parent": "ext1"}}, http.StatusBadRequest},
	} {
		tt.req.Name, tt.req.Driver = "x10", "macvlan"
		_, err := cl.NetworkCreate(context.Background(), tt.req)
		var se *api.StatusError
		if !errors.As(err, &se) || se.Status != tt.status {
			t.Errorf("%s: API answered %v, want status %d", tt.why, err, tt.status)
		}
	}
	if after := state(t, h); after != before {
		t.Errorf("state changed by the API refusals:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// Another VLAN of a used interface is another parent; it fails here only for want of
	// 802.1q, never as a conflict.
	if _, errOut, code := h.CLI(create("--subnet", "10.3.0.0/24", "-o", "parent=ext0.7", "x9")...); code == 0 {
		h.MustCLI("network", "rm", "x9")
	} else if strings.Contains(errOut, "already using") {
		t.Errorf("ext0.7 was refused as a conflict with ext0: %s", errOut)
	}
	h.MustCLI("network", "rm", "macvlan1")
}

// TestMacvlanRestart: a daemon killed and started again finds its macvlan containers as they
// were, reachable at the same addresses, and hands out the next address to a new one.
func TestMacvlanRestart(t *testing.T) {
	h := testenv.NewHost(t)
	seg := newSegment(t, h, "ext0", "192.168.57.100/24")
	h.MustCLI("network", "create", "-d", "macvlan", "--subnet", "192.168.57.0/24", "-o", "parent=ext0", "macvlan1")
	h.MustCLI("network", "create", "-d", "macvlan", "--subnet", "10.77.0.0/24", "inner")
	runSleeper(t, h, "a", "--network", "macvlan1")
	runSleeper(t, h, "b", "--network", "macvlan1")
	h.MustCLI("network", "connect", "inner", "a")
	h.MustCLI("network", "connect", "inner", "b")
	links := strings.Join(hostLinks(t, h), " ")

	h.KillDaemon()
	seg.clientPing(t, "192.168.57.2")
	h.StartDaemon()

	for name, want := range map[string]string{"a": "192.168.57.2", "b": "192.168.57.3"} {
		if ip := ipOn(t, h, name, "macvlan1"); ip != want {
			t.Errorf("%s has %s after the restart, want %s", name, ip, want)
		}
	}
	if got := strings.Join(hostLinks(t, h), " "); got != links {
		t.Errorf("host links %q after the restart, want %q", got, links)
	}
	if out := h.MustCLI("exec", "a", "busybox", "ip", "-o", "link"); strings.Count(out, "@if") != 2 {
		t.Errorf("a's interfaces after the restart (want eth0 and eth1 once each):\n%s", out)
	}
	seg.clientPing(t, "192.168.57.2")
	seg.clientPing(t, "192.168.57.3")
	execPing(t, h, "a", "192.168.57.3")
	execPing(t, h, "a", "10.77.0.3")
	runSleeper(t, h, "c", "--network", "macvlan1")
	if ip := ipOn(t, h, "c", "macvlan1"); ip != "192.168.57.4" {
		t.Errorf("c got %s, want 192.168.57.4", ip)
	}
	seg.clientPing(t, "192.168.57.4")

	// The internal parent deleted while the daemon is down is recreated and its containers
	// plugged again with the same addresses.
	id := inspectNetwork(t, h, "inner").ID
	h.StopDaemon()
	h.MustRun("ip", "link", "del", "mv-"+id[:12])
	h.StartDaemon()
	execPing(t, h, "a", "10.77.0.3")
	if ip := ipOn(t, h, "b", "inner"); ip != "10.77.0.3" {
		t.Errorf("b on inner has %s after its parent was recreated", ip)
	}
	h.MustCLI("rm", "-f", "a", "b", "c")
	h.MustCLI("network", "rm", "macvlan1", "inner")
}
