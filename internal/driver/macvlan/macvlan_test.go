package macvlan

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// The driver implements every optional interface the controller knows.
var (
	_ driver.Driver          = (*Driver)(nil)
	_ driver.Preparer        = (*Driver)(nil)
	_ driver.ConflictChecker = (*Driver)(nil)
	_ driver.SubnetChooser   = (*Driver)(nil)
)

func TestValidateOptions(t *testing.T) {
	tests := []struct {
		name string
		opts map[string]string
		want string // "" for accepted, else part of the message
	}{
		{"no options", nil, ""},
		{"parent", map[string]string{"parent": "eth0"}, ""},
		{"vlan parent", map[string]string{"parent": "eth0.100"}, ""},
		{"unknown options are kept, as Docker", map[string]string{"foo": "bar"}, ""},
		{"mode bridge", map[string]string{"macvlan_mode": "bridge"}, ""},
		{"mode private", map[string]string{"macvlan_mode": "private"}, ""},
		{"mode vepa", map[string]string{"macvlan_mode": "vepa"}, ""},
		{"mode passthru", map[string]string{"macvlan_mode": "passthru"}, ""},
		{"bad mode", map[string]string{"macvlan_mode": "source"}, `invalid macvlan_mode "source": want bridge (the default), private, vepa or passthru`},
		{"mode is case sensitive", map[string]string{"macvlan_mode": "Bridge"}, "invalid macvlan_mode"},
		{"empty parent", map[string]string{"parent": ""}, "invalid parent: empty"},
		{"long parent", map[string]string{"parent": "averyveryverylongname"}, "at most 15 characters"},
		{"slash", map[string]string{"parent": "eth/0"}, "not a valid interface name"},
		{"loopback", map[string]string{"parent": "lo"}, "loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().ValidateOptions(tt.opts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.want)
			case tt.want != "" && (!strings.Contains(err.Error(), tt.want) || !errdefs.Is(err, errdefs.KindInvalid)):
				t.Fatalf("error %q (kind %d), want an Invalid error mentioning %q", err, errdefs.KindOf(err), tt.want)
			}
		})
	}
}

func TestModes(t *testing.T) {
	for name, want := range map[string]netlink.MacvlanMode{
		"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE, "private": netlink.MACVLAN_MODE_PRIVATE,
		"vepa": netlink.MACVLAN_MODE_VEPA, "passthru": netlink.MACVLAN_MODE_PASSTHRU,
	} {
		got, err := mode(map[string]string{OptMode: name})
		if err != nil || got != want {
			t.Errorf("mode %q = %v, %v; want %v", name, got, err, want)
		}
	}
	if got, err := mode(nil); err != nil || got != netlink.MACVLAN_MODE_BRIDGE {
		t.Errorf("default mode = %v, %v; want bridge", got, err)
	}
}

func TestParseVLAN(t *testing.T) {
	tests := []struct {
		in   string
		base string
		vid  int
		bad  string
	}{
		{in: "eth0.100", base: "eth0", vid: 100},
		{in: "eth0.1", base: "eth0", vid: 1},
		{in: "eth0.4094", base: "eth0", vid: 4094},
		{in: "br.lan.7", base: "br.lan", vid: 7},
		{in: "eth0.0", bad: `VLAN id "0" must be a number from 1 to 4094`},
		{in: "eth0.4095", bad: `VLAN id "4095"`},
		{in: "eth0.abc", bad: `VLAN id "abc"`},
		{in: "eth0.", bad: `VLAN id ""`},
		{in: "eth0.-5", bad: `VLAN id "-5"`},
		{in: ".100", bad: "no interface before the VLAN id"},
		{in: "eth0", bad: "IFACE.VLAN"},
	}
	for _, tt := range tests {
		base, vid, err := parseVLAN(tt.in)
		if tt.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tt.bad) || !errdefs.Is(err, errdefs.KindInvalid) {
				t.Errorf("parseVLAN(%q) = %q %d %v, want an Invalid error mentioning %q", tt.in, base, vid, err, tt.bad)
			}
			continue
		}
		if err != nil || base != tt.base || vid != tt.vid {
			t.Errorf("parseVLAN(%q) = %q %d %v, want %q %d", tt.in, base, vid, err, tt.base, tt.vid)
		}
	}
}

// TestVLANLink checks the request cnet would send for parent=eth0.100, which this test
// machine's kernel (without 802.1q) cannot carry out.
func TestVLANLink(t *testing.T) {
	v, err := vlanLink("eth0.100", 7)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name != "eth0.100" || v.ParentIndex != 7 || v.VlanId != 100 || v.VlanProtocol != netlink.VLAN_PROTOCOL_8021Q || v.Type() != "vlan" {
		t.Errorf("vlanLink = name %q parent %d id %d proto %v type %s", v.Name, v.ParentIndex, v.VlanId, v.VlanProtocol, v.Type())
	}
	if _, err := vlanLink("eth0.4095", 7); err == nil {
		t.Error("vlanLink accepted VLAN 4095")
	}
}

func TestEndpointLink(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:c0:a8:39:02")
	ep := driver.Endpoint{IfName: "eth1", MAC: mac}
	l := endpointLink(4, ep, netlink.MACVLAN_MODE_VEPA, netns.NsHandle(9))
	if l.Name != "eth1" || l.ParentIndex != 4 || l.HardwareAddr.String() != "02:42:c0:a8:39:02" || l.Mode != netlink.MACVLAN_MODE_VEPA {
		t.Errorf("endpointLink = %+v", l.LinkAttrs)
	}
	if ns, ok := l.Namespace.(netlink.NsFd); !ok || ns != 9 {
		t.Errorf("endpointLink namespace = %#v, want the sandbox's fd", l.Namespace)
	}
}

func TestParentName(t *testing.T) {
	n := driver.Network{ID: testID, Options: map[string]string{}}
	if got := parentName(n); got != "mv-0123456789ab" || len(got) > maxIfName {
		t.Errorf("internal parent = %q", got)
	}
	n.Options[OptParent] = "eth0.10"
	if got := parentName(n); got != "eth0.10" {
		t.Errorf("parent = %q", got)
	}
	if internalLink(driver.Network{ID: testID}).Type() != "bridge" {
		t.Error("the internal parent is not a bridge")
	}
}

func TestCheckConflicts(t *testing.T) {
	net := func(name, parent string) driver.Network {
		opts := map[string]string{}
		if parent != "" {
			opts[OptParent] = parent
		}
		return driver.Network{ID: testID, Name: name, Options: opts}
	}
	others := []driver.Network{net("m1", "eth0"), net("m2", "eth0.100"), net("m3", "")}
	tests := []struct {
		name   string
		parent string
		want   string
	}{
		{"same parent", "eth0", "macvlan network m1 is already using parent interface eth0"},
		{"same vlan", "eth0.100", "macvlan network m2 is already using parent interface eth0.100"},
		{"another vlan", "eth0.200", ""},
		{"another interface", "eth1", ""},
		{"internal networks each have their own", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().CheckConflicts(net("new", tt.parent), others)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errdefs.Is(err, errdefs.KindConflict) {
				t.Fatalf("error %v, want a Conflict mentioning %q", err, tt.want)
			}
		})
	}
	if err := New().CheckConflicts(net("new", "eth0.100"), others); !strings.Contains(err.Error(), "parent=eth0.VLAN") {
		t.Errorf("the hint names the wrong interface: %v", err)
	}
}

func TestChooseSubnet(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		name     string
		own      []netip.Prefix
		gws      []netip.Addr
		subnet   string
		gateway  string
		reserved map[string]netip.Addr
		bad      string
	}{
		{name: "host is the first address", own: []netip.Prefix{pfx("192.168.58.1/24")},
			subnet: "192.168.58.0/24", gateway: "192.168.58.1"},
		{name: "host elsewhere, no route", own: []netip.Prefix{pfx("192.168.58.10/24")},
			subnet: "192.168.58.0/24", gateway: "192.168.58.1", reserved: map[string]netip.Addr{"ext0": addr("192.168.58.10")}},
		{name: "the segment's router", own: []netip.Prefix{pfx("10.1.2.10/16")}, gws: []netip.Addr{addr("10.1.0.254")},
			subnet: "10.1.0.0/16", gateway: "10.1.0.254", reserved: map[string]netip.Addr{"ext0": addr("10.1.2.10")}},
		{name: "a gateway outside is ignored", own: []netip.Prefix{pfx("10.1.2.10/24")}, gws: []netip.Addr{addr("10.9.0.1")},
			subnet: "10.1.2.0/24", gateway: "10.1.2.1", reserved: map[string]netip.Addr{"ext0": addr("10.1.2.10")}},
		{name: "secondary addresses reserved", own: []netip.Prefix{pfx("10.1.2.10/24"), pfx("10.1.2.11/24"), pfx("10.7.0.1/24")},
			subnet: "10.1.2.0/24", gateway: "10.1.2.1", reserved: map[string]netip.Addr{"ext0": addr("10.1.2.10"), "ext0-2": addr("10.1.2.11")}},
		{name: "too small", own: []netip.Prefix{pfx("10.1.2.10/31")}, bad: "macvlan network lan needs --subnet: the subnet 10.1.2.10/31 of its parent ext0 is too small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, reserved, err := chooseSubnet("ext0", "lan", tt.own, tt.gws)
			if tt.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tt.bad) || !errdefs.Is(err, errdefs.KindInvalid) {
					t.Fatalf("got %v %v %v, want an Invalid error %q", s, reserved, err, tt.bad)
				}
				return
			}
			if err != nil || s.Prefix.String() != tt.subnet || s.Gateway.String() != tt.gateway {
				t.Fatalf("got %v via %v (%v), want %s via %s", s.Prefix, s.Gateway, err, tt.subnet, tt.gateway)
			}
			if len(reserved) != len(tt.reserved) {
				t.Fatalf("reserved %v, want %v", reserved, tt.reserved)
			}
			for k, v := range tt.reserved {
				if reserved[k] != v {
					t.Errorf("reserved %v, want %v", reserved, tt.reserved)
				}
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	for in, want := range map[string]string{"10.0.0.0/8": "10.255.255.255", "192.168.57.0/24": "192.168.57.255", "10.1.2.4/30": "10.1.2.7"} {
		if got := broadcast(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("broadcast(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestPrepareNetworkRefusals needs no root: looking interfaces up is allowed to anyone, and
// the names are ones no machine has.
func TestPrepareNetworkRefusals(t *testing.T) {
	tests := []struct {
		parent string
		kind   errdefs.Kind
		want   string
	}{
		{"nosuch0", errdefs.KindNotFound, "parent interface nosuch0 of macvlan network m not found on the host"},
		{"nosuch0.100", errdefs.KindNotFound, "neither nosuch0.100 nor nosuch0, on which to create it, exists"},
		{"nosuch0.abc", errdefs.KindInvalid, `the VLAN id "abc" must be a number from 1 to 4094`},
		{"nosuch0.0", errdefs.KindInvalid, `the VLAN id "0"`},
		{"nosuch0.4095", errdefs.KindInvalid, `the VLAN id "4095"`},
	}
	for _, tt := range tests {
		n := driver.Network{ID: testID, Name: "m", Options: map[string]string{OptParent: tt.parent}}
		err := New().PrepareNetwork(&n)
		if err == nil || !strings.Contains(err.Error(), tt.want) || errdefs.KindOf(err) != tt.kind {
			t.Errorf("parent %s: %v (kind %d), want kind %d mentioning %q", tt.parent, err, errdefs.KindOf(err), tt.kind, tt.want)
		}
		if n.State != nil || n.Internal {
			t.Errorf("parent %s: a refusal changed the network: %+v", tt.parent, n)
		}
	}
	n := driver.Network{ID: testID, Name: "m", Options: map[string]string{}}
	if err := New().PrepareNetwork(&n); err != nil || !n.Internal {
		t.Errorf("without a parent: %v, internal %v; want an internal network", err, n.Internal)
	}
}
