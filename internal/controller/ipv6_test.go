package controller

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/store"
)

func dualStack() NetworkConfig {
	return NetworkConfig{Name: "d", Driver: "fake", EnableIPv6: true,
		Pools: []PoolRequest{{Subnet: "10.1.0.0/29"}, {Subnet: "2001:db8::/64"}}}
}

// TestIPv6Join: an endpoint of a dual-stack network gets an address of each family, both
// gateways and the MAC derived from its IPv4 address; one of an IPv6-only network gets only
// IPv6 and a random MAC; leaving gives every address back, and a restart holds them again.
func TestIPv6Join(t *testing.T) {
	const ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	c, j, _, st := newFakeController(t)
	n, err := c.CreateNetwork(dualStack())
	if err != nil {
		t.Fatal(err)
	}
	if !n.EnableIPv6 || n.NoIPv4 || len(n.IPAM) != 2 || n.IPAM[1].Gateway != netip.MustParseAddr("2001:db8::1") {
		t.Fatalf("dual-stack network: %+v", n)
	}
	v6, err := c.CreateNetwork(NetworkConfig{Name: "v6", Driver: "fake", EnableIPv6: true, DisableIPv4: true,
		Pools: []PoolRequest{{Subnet: "fd00:1::/64"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSandbox(ctr, ""); err != nil {
		t.Fatal(err)
	}
	j.calls = nil
	ep, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c", IP6: "2001:db8::99"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Address != netip.MustParsePrefix("10.1.0.2/29") || ep.Address6 != netip.MustParsePrefix("2001:db8::99/64") ||
		ep.Gateway != netip.MustParseAddr("10.1.0.1") || ep.Gateway6 != netip.MustParseAddr("2001:db8::1") || ep.MAC != "02:42:0a:01:00:02" {
		t.Errorf("dual-stack endpoint: %+v", ep)
	}
	// One default route per family, both through the first endpoint.
	j.check(t, []string{"ipam.RequestAddress", "ipam.RequestAddress", "ns.Open", "driver.Join", "ns.SetDefaultRoute", "ns.SetDefaultRoute"})
	ep6, err := c.Join(ctr, v6.ID, JoinOptions{ContainerName: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if ep6.Address.IsValid() || ep6.Address6 != netip.MustParsePrefix("fd00:1::2/64") || ep6.Gateway.IsValid() ||
		!strings.HasPrefix(ep6.MAC, "02:42:") || ep6.MAC == "02:42:00:00:00:00" {
		t.Errorf("IPv6-only endpoint: %+v", ep6)
	}

	// A restart holds the recorded addresses: the next endpoints get the next ones.
	c2 := reopen(t, st)
	const other = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	if _, err := c2.CreateSandbox(other, ""); err != nil {
		t.Fatal(err)
	}
	ep2, err := c2.Join(other, n.ID, JoinOptions{ContainerName: "o", IP6: "2001:db8::2"})
	if err != nil {
		t.Fatal(err)
	}
	if ep2.Address != netip.MustParsePrefix("10.1.0.3/29") {
		t.Errorf("after a restart: %v, want 10.1.0.3", ep2.Address)
	}
	if _, err := c2.Join(other, v6.ID, JoinOptions{ContainerName: "o", IP6: "fd00:1::2"}); !errdefs.Is(err, errdefs.KindConflict) {
		t.Errorf("a restored IPv6 address taken again: %v, want a conflict", err)
	}

	// Leaving releases both addresses of the dual-stack endpoint.
	j2 := &journal{}
	c2.ipams["default"] = fakeIPAM{j2, c2.ipams["default"].(fakeIPAM).local}
	if err := c2.Leave(other, n.ID); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(j2.calls, " "); got != "ipam.ReleaseAddress ipam.ReleaseAddress" {
		t.Errorf("leave's IPAM calls: %s", got)
	}
	if k := records(t, st, store.Endpoints); k != 2 {
		t.Errorf("%d endpoint records, want c's two", k)
	}
}

// TestIPv6JoinRollback: a join failing after its IPv6 address is taken gives both back.
func TestIPv6JoinRollback(t *testing.T) {
	const ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		failAt string
		want   []string
	}{
		{"ipam.RequestAddress#2", []string{"ipam.RequestAddress", "ipam.RequestAddress", "ipam.ReleaseAddress"}},
		{"driver.Join", []string{"ipam.RequestAddress", "ipam.RequestAddress", "ns.Open", "driver.Join", "ipam.ReleaseAddress", "ipam.ReleaseAddress"}},
		{"ns.SetDefaultRoute#2", []string{"ipam.RequestAddress", "ipam.RequestAddress", "ns.Open", "driver.Join", "ns.SetDefaultRoute", "ns.SetDefaultRoute",
			"driver.Leave", "ipam.ReleaseAddress", "ipam.ReleaseAddress"}},
	} {
		t.Run(tt.failAt, func(t *testing.T) {
			c, j, _, st := newFakeController(t)
			n, err := c.CreateNetwork(dualStack())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.CreateSandbox(ctr, ""); err != nil {
				t.Fatal(err)
			}
			j.calls, j.failAt = nil, tt.failAt
			if _, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c"}); !errors.Is(err, errInjected) {
				t.Fatalf("Join = %v, want the injected failure", err)
			}
			j.check(t, tt.want)
			if k := records(t, st, store.Endpoints); k != 0 {
				t.Errorf("%d endpoint records left", k)
			}
			j.failAt = ""
			ep, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c"})
			if err != nil || ep.Address6 != netip.MustParsePrefix("2001:db8::2/64") {
				t.Errorf("join after the rollback = %v, %v; want 2001:db8::2/64", ep.Address6, err)
			}
		})
	}
}

// TestIPv6Refusals: bad IPv6 requests are refused with the kind and words a user can act on,
// and leave no record.
func TestIPv6Refusals(t *testing.T) {
	const ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	nets := []struct {
		name string
		cfg  NetworkConfig
		want string
	}{
		{"v6 subnet without --ipv6", NetworkConfig{Pools: []PoolRequest{{Subnet: "2001:db8::/64"}}}, "an IPv6 subnet needs --ipv6"},
		{"no family", NetworkConfig{DisableIPv4: true}, "--ipv4=false needs --ipv6"},
		{"v4 subnet on an IPv6-only network", NetworkConfig{EnableIPv6: true, DisableIPv4: true, Pools: []PoolRequest{{Subnet: "10.0.0.0/24"}}}, "has no IPv4"},
		{"too large", NetworkConfig{EnableIPv6: true, Pools: []PoolRequest{{Subnet: "2001:db8::/56"}}}, "2001:db8::/56"},
		{"mapped", NetworkConfig{EnableIPv6: true, Pools: []PoolRequest{{Subnet: "::ffff:10.0.0.0/120"}}}, "plain IPv4 or IPv6"},
		{"gateway outside", NetworkConfig{EnableIPv6: true, Pools: []PoolRequest{{Subnet: "2001:db8::/64", Gateway: "2001:db9::1"}}}, "gateway"},
	}
	for _, tt := range nets {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _, st := newFakeController(t)
			tt.cfg.Name, tt.cfg.Driver = "n", "fake"
			_, err := c.CreateNetwork(tt.cfg)
			if !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CreateNetwork = %v, want an invalid-input error with %q", err, tt.want)
			}
			if k := records(t, st, store.Networks); k != 0 {
				t.Errorf("%d network records left", k)
			}
		})
	}
	c, _, _, st := newFakeController(t)
	n, err := c.CreateNetwork(dualStack())
	if err != nil {
		t.Fatal(err)
	}
	four, err := c.CreateNetwork(NetworkConfig{Name: "four", Driver: "fake", Pools: []PoolRequest{{Subnet: "10.2.0.0/24"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSandbox(ctr, ""); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		net, ip6, want string
	}{
		{four.ID, "2001:db8::5", "--ip6 needs a network created with --ipv6"},
		{n.ID, "2001:db9::5", "does not belong to"},
		{n.ID, "10.1.0.5", "invalid IPv6 address"},
		{n.ID, "2001:db8::1", "it is the network's gateway"},
	} {
		if _, err := c.Join(ctr, tt.net, JoinOptions{ContainerName: "c", IP6: tt.ip6}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Join --ip6 %s = %v, want an error with %q", tt.ip6, err, tt.want)
		}
	}
	if k := records(t, st, store.Endpoints); k != 0 {
		t.Errorf("%d endpoint records left", k)
	}
	// The refused joins gave their IPv4 addresses back.
	ep, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c"})
	if err != nil || ep.Address != netip.MustParsePrefix("10.1.0.2/29") {
		t.Errorf("join after the refusals = %v, %v", ep.Address, err)
	}
}
