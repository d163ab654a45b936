package overlay

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

const vni = 4242

// TestTwoHosts runs the driver on two hosts and checks, with real packets, what each step of
// an overlay network's life does to the kernel.
func TestTwoHosts(t *testing.T) {
	tb := newTestbed(t)
	a := tb.host("hostA", "ra", "192.168.1.11/24")
	b := tb.host("hostB", "rb", "172.31.1.12/24")
	for _, h := range []*host{a, b} {
		h.must("Start", func(d *Driver) error { return d.Start(context.Background()) })
		// The reaper of retired veths runs on a thread of the machine's namespace; stop it,
		// so that nothing the test does is ever deleted outside its own namespaces.
		h.must("Close", func(d *Driver) error { return d.Close() })
		h.sh("nft", "list", "chain", "ip", allowTable, allowChain)
	}

	n := driver.Network{ID: testID, Name: "ov", SegmentID: vni, Options: map[string]string{},
		Subnets: []driver.Subnet{{Prefix: netip.MustParsePrefix("10.50.0.0/24"), Gateway: netip.MustParseAddr("10.50.0.1")}}}
	a.must("PrepareNetwork", func(d *Driver) error { return d.PrepareNetwork(&n) })
	if n.Options[OptMTU] != "1450" {
		t.Fatalf("derived MTU %q, want 1450 (the underlay's 1500 - 50)", n.Options[OptMTU])
	}
	for _, h := range []*host{a, b} {
		h.must("CreateNetwork", func(d *Driver) error { return d.CreateNetwork(n) })
	}
	epA, epB := tb.sandbox("A", "10.50.0.2/24"), tb.sandbox("B", "10.50.0.3/24")
	join(a, n, epA)
	join(b, n, epB)
	if ping(epA.SandboxPath, epB.Address.Addr()) {
		t.Fatal("A reaches B before any peer was synced")
	}
	syncAll := func() {
		t.Helper()
		a.must("SyncPeers", func(d *Driver) error { return d.SyncPeers(n, []driver.Peer{peerOf(b, epB)}) })
		b.must("SyncPeers", func(d *Driver) error { return d.SyncPeers(n, []driver.Peer{peerOf(a, epA)}) })
	}
	syncAll()
	// reach fails t (the caller's: a subtest's own) unless A and B ping each other within a
	// few tries: a sandbox whose ARP for B just failed re-resolves on its own schedule, which
	// on a loaded machine can take longer than one ping's wait.
	reach := func(t *testing.T, what string) {
		t.Helper()
		ok := false
		for try := 0; try < 3 && !ok; try++ {
			ok = ping(epA.SandboxPath, epB.Address.Addr()) && ping(epB.SandboxPath, epA.Address.Addr())
		}
		if !ok {
			t.Fatalf("%s: A and B do not reach each other\nA: %s\nB: %s", what,
				a.sh("bridge", "fdb", "show", "dev", VXLANName(n)), b.sh("bridge", "fdb", "show", "dev", VXLANName(n)))
		}
	}
	reach(t, "after SyncPeers")

	t.Run("devices", func(t *testing.T) {
		out := a.sh("ip", "-d", "link", "show", VXLANName(n))
		for _, want := range []string{"mtu 1450", "master " + BridgeName(n), "vxlan id 4242 local 192.168.1.11", "dstport 4789", "nolearning", "proxy", ",UP,"} {
			if !strings.Contains(out, want) {
				t.Errorf("vxlan device lacks %q:\n%s", want, out)
			}
		}
		vx := out[strings.Index(out, "vxlan id"):]
		vx = vx[:strings.Index(vx, "\n")]
		for _, bad := range []string{"l2miss", "l3miss", "remote", "group"} {
			if strings.Contains(vx, bad) {
				t.Errorf("vxlan device has %q:\n%s", bad, out)
			}
		}
		for _, l := range []string{BridgeName(n), epA.HostIfName} {
			if out := a.sh("ip", "link", "show", l); !strings.Contains(out, "mtu 1450") {
				t.Errorf("%s: want mtu 1450:\n%s", l, out)
			}
		}
		if out := a.sh("ip", "addr", "show", BridgeName(n)); !strings.Contains(out, "10.50.0.1/24") {
			t.Errorf("the bridge does not hold the gateway:\n%s", out)
		}
		peers, err := kernelPeersOf(a, n)
		if err != nil || len(peers) != 1 || peers[0].Address != epB.Address.Addr() || peers[0].MAC.String() != epB.MAC.String() || peers[0].VTEP != b.vtep {
			t.Errorf("KernelPeers = %+v, %v", peers, err)
		}
	})

	t.Run("no flooding, ARP by proxy", func(t *testing.T) {
		if out := a.sh("bridge", "fdb", "show", "dev", VXLANName(n)); strings.Contains(out, "00:00:00:00:00:00") {
			t.Errorf("an all-zero (flooding) FDB entry:\n%s", out)
		}
		// A peer that exists only in the cluster store: nothing on host B answers ARP for it,
		// so a reply can only come from host A's VXLAN device.
		ghost := driver.Peer{EndpointID: "ghost", Address: netip.MustParseAddr("10.50.0.77"),
			MAC: mac("02:42:0a:32:00:4d"), VTEP: b.vtep}
		a.must("SyncPeers", func(d *Driver) error { return d.SyncPeers(n, []driver.Peer{peerOf(b, epB), ghost}) })
		before := b.stats(VXLANName(n)).RxPackets
		out, err := run(epA.SandboxPath, "busybox", "arping", "-c", "1", "-w", "2", "-I", "eth0", "10.50.0.77")
		if err != nil || !strings.Contains(strings.ToLower(out), "02:42:0a:32:00:4d") {
			t.Errorf("ARP for a peer not answered by proxy: %v\n%s", err, out)
		}
		// An address no peer has is not answered, and the request did not cross.
		if out, err := run(epA.SandboxPath, "busybox", "arping", "-c", "1", "-w", "1", "-I", "eth0", "10.50.0.99"); err == nil {
			t.Errorf("ARP for an unknown address answered:\n%s", out)
		}
		if after := b.stats(VXLANName(n)).RxPackets; after != before {
			t.Errorf("host B's VXLAN device received %d packets during the ARPs, want none", after-before)
		}
		syncAll()
	})

	t.Run("hand-made changes heal on the next sync", func(t *testing.T) {
		tests := []struct {
			name   string
			change [][]string
		}{
			{"fdb entry deleted", [][]string{{"bridge", "fdb", "del", epB.MAC.String(), "dev", VXLANName(n), "self"}}},
			{"fdb entry pointed elsewhere", [][]string{{"bridge", "fdb", "replace", epB.MAC.String(), "dev", VXLANName(n), "dst", "10.77.0.2", "self", "permanent"}}},
			// A's own ARP cache is flushed too: it would otherwise not ask again.
			{"neighbour deleted", [][]string{{"ip", "neigh", "del", "10.50.0.3", "dev", VXLANName(n)}, {"@A", "ip", "neigh", "flush", "dev", "eth0"}}},
			{"flooding entry and strays added", [][]string{
				{"bridge", "fdb", "append", "00:00:00:00:00:00", "dev", VXLANName(n), "dst", "10.77.0.2", "self", "permanent"},
				{"bridge", "fdb", "append", "02:00:00:00:00:99", "dev", VXLANName(n), "dst", "10.77.0.2", "self", "permanent"},
				{"ip", "neigh", "add", "10.50.0.200", "lladdr", "02:00:00:00:00:99", "dev", VXLANName(n), "nud", "permanent"},
			}},
			{"vxlan deleted", [][]string{{"ip", "link", "del", VXLANName(n)}}},
			{"vxlan down and detached", [][]string{{"ip", "link", "set", VXLANName(n), "down", "nomaster"}}},
			{"vxlan with learning", [][]string{{"ip", "link", "del", VXLANName(n)},
				{"ip", "link", "add", VXLANName(n), "type", "vxlan", "id", "4242", "dstport", "4789", "local", "192.168.1.11", "learning"}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				for _, c := range tt.change {
					if c[0] == "@A" {
						tb.run(epA.SandboxPath, c[1:]...)
						continue
					}
					a.sh(c...)
				}
				if tt.name != "flooding entry and strays added" && ping(epA.SandboxPath, epB.Address.Addr()) {
					t.Errorf("A still reaches B after the change")
				}
				syncAll()
				reach(t, "after the next SyncPeers")
				fdb := a.sh("bridge", "fdb", "show", "dev", VXLANName(n))
				if strings.Contains(fdb, "00:00:00:00:00:00") || strings.Contains(fdb, "02:00:00:00:00:99") || strings.Contains(fdb, "10.77.0.2") {
					t.Errorf("stale FDB entries left:\n%s", fdb)
				}
				if neigh := a.sh("ip", "neigh", "show", "dev", VXLANName(n)); strings.TrimSpace(neigh) != "10.50.0.3 lladdr "+epB.MAC.String()+" PERMANENT" {
					t.Errorf("neighbour entries:\n%s", neigh)
				}
			})
		}
	})

	t.Run("allowlist", func(t *testing.T) {
		want := []string{"172.31.1.12.4242"}
		if keys, _ := a.allowlist(); !slices.Equal(keys, want) {
			t.Errorf("host A's allowlist %v, want %v", keys, want)
		}
		// A datagram for the network from a host that is no member is dropped before the
		// VXLAN device sees it.
		rx := a.stats(VXLANName(n)).RxPackets
		_, drops := a.allowlist()
		sendVXLAN(t, tb.intruder, a.vtep, vni)
		if got := a.stats(VXLANName(n)).RxPackets; got != rx {
			t.Errorf("the VXLAN device received a non-member's datagram")
		}
		if _, d := a.allowlist(); d != drops+1 {
			t.Errorf("drop counter %d, want %d", d, drops+1)
		}
		// The same datagram once the sender is a member's VTEP is let through.
		fake := driver.Peer{EndpointID: "x", Address: netip.MustParseAddr("10.50.0.88"), MAC: mac("02:42:0a:32:00:58"),
			VTEP: netip.MustParseAddr("10.77.0.2")}
		a.must("SyncPeers", func(d *Driver) error { return d.SyncPeers(n, []driver.Peer{peerOf(b, epB), fake}) })
		sendVXLAN(t, tb.intruder, a.vtep, vni)
		if got := a.stats(VXLANName(n)).RxPackets; got != rx+1 {
			t.Errorf("a member's datagram: the VXLAN device received %d, want 1", got-rx)
		}
		// A member of one VNI is no member of another.
		sendVXLAN(t, tb.intruder, a.vtep, vni+1)
		if _, d := a.allowlist(); d != drops+2 {
			t.Errorf("a datagram for another VNI was not dropped (counter %d, want %d)", d, drops+2)
		}
		syncAll()
		// With B's VTEP out of the set (FDB untouched), B's packets no longer arrive.
		a.must("syncAllowlist", func(d *Driver) error { return d.syncAllowlist(vni, nil) })
		if ping(epA.SandboxPath, epB.Address.Addr()) {
			t.Error("A reaches B with B's VTEP off the allowlist")
		}
		// A restarting daemon (Start again) keeps the elements.
		syncAll()
		a.must("Start", func(d *Driver) error { return d.ensureAllowlist() })
		if keys, _ := a.allowlist(); !slices.Equal(keys, want) {
			t.Errorf("after a restart: %v, want %v", keys, want)
		}
		reach(t, "after a restart")
	})

	t.Run("restore", func(t *testing.T) {
		a.sh("ip", "link", "del", VXLANName(n))
		a.sh("ip", "link", "add", "vethstray", "master", BridgeName(n), "type", "veth", "peer", "name", "vethstray2")
		a.must("Restore", func(d *Driver) error { return d.Restore(n, []driver.Endpoint{epA}) })
		if got := a.links(); !slices.Equal(got, []string{BridgeName(n), epA.HostIfName, VXLANName(n)}) {
			t.Errorf("links after Restore: %v", got)
		}
		a.must("EndpointPresent", func(d *Driver) error {
			if !d.EndpointPresent(n, epA) {
				t.Error("A's endpoint is not present after Restore")
			}
			return nil
		})
		syncAll()
		reach(t, "after Restore")
	})

	t.Run("a failed create leaves nothing", func(t *testing.T) {
		other := n
		other.ID = strings.Repeat("f", 64)
		other.Name = "same-vni"
		err := a.in(func(d *Driver) error { return d.CreateNetwork(other) })
		if err == nil || !errdefs.Is(err, errdefs.KindConflict) || !strings.Contains(err.Error(), "already uses VNI 4242") {
			t.Errorf("a second network with VNI %d: %v, want a conflict", vni, err)
		}
		if got := a.links(); slices.Contains(got, BridgeName(other)) || slices.Contains(got, VXLANName(other)) {
			t.Errorf("left behind: %v", got)
		}
	})

	t.Run("no peers", func(t *testing.T) {
		a.must("SyncPeers", func(d *Driver) error { return d.SyncPeers(n, nil) })
		if out := a.sh("bridge", "fdb", "show", "dev", VXLANName(n)); strings.Contains(out, " self") {
			t.Errorf("FDB entries left:\n%s", out)
		}
		if out := strings.TrimSpace(a.sh("ip", "neigh", "show", "dev", VXLANName(n))); out != "" {
			t.Errorf("neighbour entries left:\n%s", out)
		}
		if keys, _ := a.allowlist(); len(keys) != 0 {
			t.Errorf("allowlist %v, want empty", keys)
		}
		if peers, err := kernelPeersOf(a, n); err != nil || len(peers) != 0 {
			t.Errorf("KernelPeers = %v, %v", peers, err)
		}
		if ping(epA.SandboxPath, epB.Address.Addr()) {
			t.Error("A reaches B without peers")
		}
	})

	t.Run("delete", func(t *testing.T) {
		b.must("Leave", func(d *Driver) error { return d.Leave(n, epB) })
		b.must("Leave again", func(d *Driver) error { return d.Leave(n, epB) })
		a.must("Retire", func(d *Driver) error { return d.Retire(n, epA) })
		for _, h := range []*host{a, b} {
			h.must("SyncPeers", func(d *Driver) error {
				return d.SyncPeers(n, []driver.Peer{{Address: netip.MustParseAddr("10.50.0.9"), MAC: mac("02:00:00:00:00:09"), VTEP: netip.MustParseAddr("10.77.0.2")}})
			})
			h.must("DeleteNetwork", func(d *Driver) error { return d.DeleteNetwork(n) })
			h.must("DeleteNetwork again", func(d *Driver) error { return d.DeleteNetwork(n) })
			if got := h.links(); len(got) != 0 {
				t.Errorf("links left on %s: %v", h.path, got)
			}
			if keys, _ := h.allowlist(); len(keys) != 0 {
				t.Errorf("allowlist elements left: %v", keys)
			}
		}
	})
}

func kernelPeersOf(h *host, n driver.Network) (peers []driver.Peer, err error) {
	err = h.in(func(d *Driver) error {
		peers, err = d.KernelPeers(n)
		return err
	})
	return peers, err
}
