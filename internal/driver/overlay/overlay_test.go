package overlay

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// These tests need no root: they check the driver's decisions, not the kernel.

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// The driver implements every interface the controller knows for a global network.
var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.Preparer   = (*Driver)(nil)
	_ driver.Exposer    = (*Driver)(nil)
	_ driver.Retirer    = (*Driver)(nil)
	_ driver.Lifecycle  = (*Driver)(nil)
	_ driver.PeerSyncer = (*Driver)(nil)
)

func TestCapabilities(t *testing.T) {
	d := New(Config{})
	want := driver.Capabilities{Scope: driver.ScopeGlobal, Gateway: true, DNS: true, PortPublishing: true}
	if d.Type() != "overlay" || d.Capabilities() != want {
		t.Errorf("type %q capabilities %+v", d.Type(), d.Capabilities())
	}
}

func TestValidateOptions(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]string
		want string // "" for accepted
	}{
		{"none", nil, ""},
		{"mtu", map[string]string{OptMTU: "1450"}, ""},
		{"smallest mtu", map[string]string{OptMTU: "68"}, ""},
		{"largest mtu", map[string]string{OptMTU: "65535"}, ""},
		{"mtu too small", map[string]string{OptMTU: "67"}, `invalid com.docker.network.driver.mtu "67": want a number from 68 to 65535`},
		{"mtu too large", map[string]string{OptMTU: "65536"}, "want a number from 68 to 65535"},
		{"mtu not a number", map[string]string{OptMTU: "big"}, `"big"`},
		{"bridge name refused", map[string]string{bridge.OptBridgeName: "br0"}, "overlay networks take no option com.docker.network.bridge.name"},
		{"unknown refused", map[string]string{"encrypted": ""}, "no option encrypted: the only option is com.docker.network.driver.mtu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(Config{}).ValidateOptions(tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.want)
			case tt.want != "" && (!strings.Contains(err.Error(), tt.want) || !errdefs.Is(err, errdefs.KindInvalid)):
				t.Fatalf("error %q, want an Invalid error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestOverlayMTU(t *testing.T) {
	vtep := netip.MustParseAddr("192.168.1.11")
	tests := []struct {
		under, want int
		bad         string
	}{
		{1500, 1450, ""},
		{9000, 8950, ""},
		{118, 68, ""},
		{117, 0, "the interface of 192.168.1.11 has MTU 117, too small to carry VXLAN"},
	}
	for _, tt := range tests {
		got, err := overlayMTU(tt.under, vtep)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) || !errdefs.Is(err, errdefs.KindInvalid) {
				t.Errorf("overlayMTU(%d) = %d, %v; want an Invalid error %q", tt.under, got, err, tt.bad)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("overlayMTU(%d) = %d, %v; want %d", tt.under, got, err, tt.want)
		}
	}
}

func TestLinkOf(t *testing.T) {
	addr := func(cidr string, idx int) netlink.Addr {
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		a.LinkIndex = idx
		return *a
	}
	addrs := []netlink.Addr{addr("127.0.0.1/8", 1), addr("10.0.0.5/24", 2), addr("192.168.1.11/24", 3), {LinkIndex: 9}}
	if idx, ok := linkOf(addrs, netip.MustParseAddr("192.168.1.11")); !ok || idx != 3 {
		t.Errorf("linkOf = %d %v, want 3", idx, ok)
	}
	if _, ok := linkOf(addrs, netip.MustParseAddr("192.168.1.12")); ok {
		t.Error("found an address no link has")
	}
}

// TestPrepareNetworkRefusals: without a usable VTEP nothing is prepared and nothing changes.
func TestPrepareNetworkRefusals(t *testing.T) {
	tests := []struct {
		vtep string
		want string
	}{
		{"", "overlay networks need a cluster store: start the daemon with --cluster-store etcd://HOST:PORT and --cluster-advertise IP"},
		{"0.0.0.0", "need a cluster store"},
		{"fd00::1", "VXLAN over IPv4 only"},
		// An address no interface has: the MTU cannot be derived.
		{"203.0.113.254", "the cluster advertise address 203.0.113.254 is on no interface of this host"},
	}
	for _, tt := range tests {
		var cfg Config
		if tt.vtep != "" {
			cfg.VTEP = netip.MustParseAddr(tt.vtep)
		}
		n := driver.Network{ID: testID, Name: "ov", Options: map[string]string{}}
		err := New(cfg).PrepareNetwork(&n)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("VTEP %q: %v, want an Invalid error %q", tt.vtep, err, tt.want)
		}
		if len(n.Options) != 0 {
			t.Errorf("VTEP %q: a refusal changed the options: %v", tt.vtep, n.Options)
		}
	}
	// A given MTU is kept as it is; no interface is looked at.
	n := driver.Network{ID: testID, Options: map[string]string{OptMTU: "1400"}}
	if err := New(Config{VTEP: netip.MustParseAddr("203.0.113.254")}).PrepareNetwork(&n); err != nil || n.Options[OptMTU] != "1400" {
		t.Errorf("with an MTU: %v %v", err, n.Options)
	}
}

// TestCreateNetworkRefusals fail before anything is looked up on the host.
func TestCreateNetworkRefusals(t *testing.T) {
	d := New(Config{VTEP: netip.MustParseAddr("192.168.1.11")})
	for _, vni := range []uint32{0, 1 << 24} {
		n := driver.Network{ID: testID, Name: "ov", SegmentID: vni, Options: map[string]string{OptMTU: "1450"}}
		if err := d.CreateNetwork(n); err == nil || !strings.Contains(err.Error(), "not a valid VXLAN network identifier") {
			t.Errorf("VNI %d: %v", vni, err)
		}
	}
	n := driver.Network{ID: testID, Name: "ov", SegmentID: 7}
	if err := New(Config{}).CreateNetwork(n); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Errorf("without a VTEP: %v", err)
	}
}

func TestNames(t *testing.T) {
	n := driver.Network{ID: testID, Options: map[string]string{OptMTU: "1450"}, Internal: true,
		Subnets: []driver.Subnet{{Prefix: netip.MustParsePrefix("10.50.0.0/24"), Gateway: netip.MustParseAddr("10.50.0.1")}}}
	if BridgeName(n) != "ov-0123456789ab" || VXLANName(n) != "vx-0123456789ab" {
		t.Errorf("names %s %s", BridgeName(n), VXLANName(n))
	}
	b := bridgeNetwork(n)
	if bridge.BridgeName(b) != "ov-0123456789ab" || b.Options[bridge.OptMTU] != "1450" || !b.Internal || len(b.Subnets) != 1 || b.ID != n.ID {
		t.Errorf("bridge network %+v", b)
	}
	if n.Options[bridge.OptBridgeName] != "" {
		t.Error("the translation changed the overlay network's options")
	}
	e := New(Config{}).Exposure(n)
	if e.Interface != "ov-0123456789ab" || !e.Masquerade || !e.ICC || e.HostBinding.IsValid() {
		t.Errorf("exposure %+v", e)
	}
}

func TestVXLANLink(t *testing.T) {
	n := driver.Network{ID: testID, SegmentID: 4097}
	v := vxlanLink(n, netip.MustParseAddr("192.168.1.11"), 1450, 7)
	if v.Name != "vx-0123456789ab" || v.VxlanId != 4097 || v.Port != 4789 || v.SrcAddr.String() != "192.168.1.11" ||
		v.Learning || !v.Proxy || v.L2miss || v.L3miss || v.MTU != 1450 || v.MasterIndex != 7 || v.Group != nil {
		t.Errorf("vxlanLink = %+v", v)
	}
	if why := vxlanMismatch(vxlanLink(n, netip.MustParseAddr("192.168.1.11"), 9000, 3), v); why != "" {
		t.Errorf("MTU and master are changed in place, yet: %s", why)
	}
	bad := []func(*netlink.Vxlan){
		func(x *netlink.Vxlan) { x.VxlanId = 1 },
		func(x *netlink.Vxlan) { x.Port = 8472 },
		func(x *netlink.Vxlan) { x.SrcAddr = net.ParseIP("10.0.0.1") },
		func(x *netlink.Vxlan) { x.Learning = true },
		func(x *netlink.Vxlan) { x.Proxy = false },
		func(x *netlink.Vxlan) { x.L3miss = true },
		func(x *netlink.Vxlan) { x.Group = net.ParseIP("239.1.1.1") },
	}
	for i, f := range bad {
		got := vxlanLink(n, netip.MustParseAddr("192.168.1.11"), 1450, 7)
		f(got)
		if vxlanMismatch(got, v) == "" {
			t.Errorf("change %d not noticed", i)
		}
	}
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestWanted(t *testing.T) {
	a := netip.MustParseAddr
	self := a("192.168.1.11")
	peers := []driver.Peer{
		{EndpointID: "e1", Address: a("10.50.0.2"), MAC: mac("02:42:0a:32:00:02"), VTEP: a("172.31.1.12")},
		{EndpointID: "e2", Address: a("10.50.0.3"), MAC: mac("02:42:0a:32:00:03"), VTEP: a("172.31.1.12")},
		{EndpointID: "e3", Address: a("10.50.0.4"), Address6: a("fd77::4"), MAC: mac("02:42:0a:32:00:04"), VTEP: a("172.31.1.13")},
		{EndpointID: "bad-v6", Address: a("10.50.0.10"), Address6: a("10.50.0.10"), MAC: mac("02:42:0a:32:00:10"), VTEP: a("172.31.1.13")},
		{EndpointID: "dup-v6", Address: a("10.50.0.11"), Address6: a("fd77::4"), MAC: mac("02:42:0a:32:00:11"), VTEP: a("172.31.1.13")},
		{EndpointID: "bad-mac", Address: a("10.50.0.5"), MAC: mac("01:00:5e:00:00:01"), VTEP: a("172.31.1.13")},
		{EndpointID: "zero-mac", Address: a("10.50.0.6"), MAC: mac("00:00:00:00:00:00"), VTEP: a("172.31.1.13")},
		{EndpointID: "self", Address: a("10.50.0.7"), MAC: mac("02:42:0a:32:00:07"), VTEP: self},
		{EndpointID: "no-vtep", Address: a("10.50.0.8"), MAC: mac("02:42:0a:32:00:08")},
		{EndpointID: "v6", Address: a("fd00::8"), MAC: mac("02:42:0a:32:00:09"), VTEP: a("172.31.1.13")},
		{EndpointID: "dup-mac", Address: a("10.50.0.9"), MAC: mac("02:42:0a:32:00:02"), VTEP: a("172.31.1.14")},
		{EndpointID: "dup-addr", Address: a("10.50.0.2"), MAC: mac("02:42:0a:32:00:0a"), VTEP: a("172.31.1.12")},
		{EndpointID: "e1", Address: a("10.50.0.2"), MAC: mac("02:42:0a:32:00:02"), VTEP: a("172.31.1.12")}, // repeated: fine
	}
	w, err := wanted(peers, self)
	if len(w.fdb) != 3 || len(w.neigh) != 4 || w.fdb["02:42:0a:32:00:04"] != a("172.31.1.13") || w.neigh[a("10.50.0.3")] != "02:42:0a:32:00:03" ||
		w.neigh[a("fd77::4")] != "02:42:0a:32:00:04" {
		t.Errorf("wanted = %+v", w)
	}
	if !slices.Equal(w.vteps, []netip.Addr{a("172.31.1.12"), a("172.31.1.13")}) {
		t.Errorf("vteps %v", w.vteps)
	}
	for _, id := range []string{"bad-mac", "zero-mac", "self", "no-vtep", "v6", "bad-v6", "dup-v6", "dup-mac", "dup-addr"} {
		if err == nil || !strings.Contains(err.Error(), "endpoint "+id+" ") {
			t.Errorf("%s not reported: %v", id, err)
		}
	}
	if !errdefs.Is(err, errdefs.KindInvalid) || strings.Contains(err.Error(), "endpoint e1 ") {
		t.Errorf("error %v", err)
	}
	if w, err := wanted(nil, self); err != nil || len(w.fdb)+len(w.neigh)+len(w.vteps) != 0 {
		t.Errorf("no peers: %+v %v", w, err)
	}
}

func TestFDBPlan(t *testing.T) {
	a := netip.MustParseAddr
	perm := unix.NUD_PERMANENT
	have := map[string][]fdbRemote{
		"02:00:00:00:00:01": {{dst: a("172.31.1.12"), state: perm}},                                       // right
		"02:00:00:00:00:02": {{dst: a("172.31.1.99"), state: perm}},                                       // wrong dst: set
		"02:00:00:00:00:03": {{dst: a("172.31.1.12"), state: unix.NUD_REACHABLE}},                         // not permanent: set
		"02:00:00:00:00:04": {{dst: a("172.31.1.12"), state: perm}, {dst: a("172.31.1.13"), state: perm}}, // extra dst: del+set
		"02:00:00:00:00:05": {{dst: a("172.31.1.12"), state: perm, vni: 9}},                               // other VNI: set
		"00:00:00:00:00:00": {{dst: a("172.31.1.12"), state: perm}},                                       // flooding: del
		"02:00:00:00:00:99": {{dst: a("172.31.1.12"), state: perm}},                                       // stale: del
	}
	w := map[string]netip.Addr{}
	for _, m := range []string{"01", "02", "03", "04", "05", "06"} {
		w["02:00:00:00:00:"+m] = a("172.31.1.12")
	}
	del, set := fdbPlan(have, w)
	if want := []string{"00:00:00:00:00:00", "02:00:00:00:00:04", "02:00:00:00:00:99"}; !slices.Equal(del, want) {
		t.Errorf("del %v, want %v", del, want)
	}
	if want := []string{"02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04", "02:00:00:00:00:05", "02:00:00:00:00:06"}; !slices.Equal(set, want) {
		t.Errorf("set %v, want %v", set, want)
	}
}

func TestNeighPlan(t *testing.T) {
	a := netip.MustParseAddr
	have := map[netip.Addr]netlink.Neigh{
		a("10.50.0.2"): {HardwareAddr: mac("02:00:00:00:00:02"), State: unix.NUD_PERMANENT},
		a("10.50.0.3"): {HardwareAddr: mac("02:00:00:00:00:ff"), State: unix.NUD_PERMANENT},
		a("10.50.0.4"): {HardwareAddr: mac("02:00:00:00:00:04"), State: unix.NUD_STALE},
		a("10.50.0.9"): {HardwareAddr: mac("02:00:00:00:00:09"), State: unix.NUD_PERMANENT},
	}
	w := map[netip.Addr]string{a("10.50.0.2"): "02:00:00:00:00:02", a("10.50.0.3"): "02:00:00:00:00:03",
		a("10.50.0.4"): "02:00:00:00:00:04", a("10.50.0.5"): "02:00:00:00:00:05"}
	del, set := neighPlan(have, w)
	if !slices.Equal(del, []netip.Addr{a("10.50.0.9")}) || !slices.Equal(set, []netip.Addr{a("10.50.0.3"), a("10.50.0.4"), a("10.50.0.5")}) {
		t.Errorf("del %v set %v", del, set)
	}
}

func TestKernelPeers(t *testing.T) {
	a := netip.MustParseAddr
	fdb := map[string][]fdbRemote{
		"02:00:00:00:00:02": {{dst: a("172.31.1.12")}},
		"02:00:00:00:00:03": {{dst: a("172.31.1.13")}},
		"00:00:00:00:00:00": {{dst: a("172.31.1.13")}},
	}
	neigh := map[netip.Addr]netlink.Neigh{
		a("10.50.0.2"): {HardwareAddr: mac("02:00:00:00:00:02")},
		a("10.50.0.4"): {HardwareAddr: mac("02:00:00:00:00:04")},
	}
	got := kernelPeers(fdb, neigh)
	want := []driver.Peer{
		{MAC: mac("02:00:00:00:00:02"), Address: a("10.50.0.2"), VTEP: a("172.31.1.12")},
		{MAC: mac("02:00:00:00:00:03"), VTEP: a("172.31.1.13")},
		{MAC: mac("02:00:00:00:00:04"), Address: a("10.50.0.4")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i].MAC.String() != want[i].MAC.String() || got[i].Address != want[i].Address || got[i].VTEP != want[i].VTEP {
			t.Errorf("peer %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestAllowKey(t *testing.T) {
	k := allowKey(netip.MustParseAddr("172.31.1.12"), 0x123456)
	if want := []byte{172, 31, 1, 12, 0x12, 0x34, 0x56, 0}; !slices.Equal(k, want) {
		t.Errorf("key % x, want % x", k, want)
	}
	if vni, ok := keyVNI(k); !ok || vni != 0x123456 {
		t.Errorf("keyVNI = %x %v", vni, ok)
	}
	if _, ok := keyVNI([]byte{1, 2, 3, 4, 0, 0, 1, 1}); ok {
		t.Error("a key with the reserved byte set was accepted")
	}
}

func TestAllowDiff(t *testing.T) {
	a := netip.MustParseAddr
	el := func(vtep string, vni uint32) nftables.SetElement {
		return nftables.SetElement{Key: allowKey(a(vtep), vni)}
	}
	have := []nftables.SetElement{el("172.31.1.12", 7), el("172.31.1.13", 7), el("172.31.1.12", 8), {Key: []byte{1, 2, 3}}}
	add, del := allowDiff(have, 7, []netip.Addr{a("172.31.1.12"), a("172.31.1.14")})
	keys := func(els []nftables.SetElement) (out []string) {
		for _, e := range els {
			out = append(out, string(e.Key))
		}
		return out
	}
	if !slices.Equal(keys(add), keys([]nftables.SetElement{el("172.31.1.14", 7)})) {
		t.Errorf("add %v", add)
	}
	if !slices.Equal(keys(del), keys([]nftables.SetElement{el("172.31.1.13", 7), {Key: []byte{1, 2, 3}}})) {
		t.Errorf("del %v", del)
	}
	add, del = allowDiff(have[:3], 8, nil)
	if len(add) != 0 || !slices.Equal(keys(del), keys([]nftables.SetElement{el("172.31.1.12", 8)})) {
		t.Errorf("removing VNI 8: add %v del %v", add, del)
	}
}

// TestStartWithoutVTEP: a daemon without a cluster store starts the driver (the bridge
// side's reaper only) and never touches nftables.
func TestStartWithoutVTEP(t *testing.T) {
	d := New(Config{})
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := d.syncAllowlist(7, []netip.Addr{netip.MustParseAddr("172.31.1.12")}); err != nil {
		t.Errorf("the allowlist without a VTEP: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
