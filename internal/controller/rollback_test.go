package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/firewall"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/portmap"
	"github.com/cnet-dev/cnet/internal/store"
)

// These tests drive the controller's ordering and rollback without a kernel (libnetwork's
// badDriver tests): a fake driver, a fake allocator and fake namespaces log every call into one
// journal and fail at a chosen call; each test checks the exact sequence of steps and undos,
// and that nothing is left in the store, the allocator or the controller.

var errInjected = errors.New("injected failure")

// journal is the shared call log, and where failures are armed: failAt names a call
// ("driver.Join") or its nth occurrence ("ipam.RequestPool#2").
type journal struct {
	calls  []string
	counts map[string]int
	failAt string
}

func (j *journal) call(name string) error {
	if j.counts == nil {
		j.counts = map[string]int{}
	}
	j.counts[name]++
	j.calls = append(j.calls, name)
	if j.failAt == name || j.failAt == fmt.Sprintf("%s#%d", name, j.counts[name]) {
		return fmt.Errorf("%s: %w", name, errInjected)
	}
	return nil
}

// check fails the test unless the journal holds exactly want.
func (j *journal) check(t *testing.T, want []string) {
	t.Helper()
	if !slices.Equal(j.calls, want) {
		t.Errorf("steps:\n  %s\nwant:\n  %s", strings.Join(j.calls, "\n  "), strings.Join(want, "\n  "))
	}
}

type fakeDriver struct{ j *journal }

func (fakeDriver) Type() string { return "fake" }
func (fakeDriver) Capabilities() driver.Capabilities {
	// No DNS or port publishing: the resolver and the firewall need a kernel; their parts of
	// a sandbox's start are covered by the integration tests.
	return driver.Capabilities{Scope: driver.ScopeLocal, Gateway: true, IPv6: true}
}
func (fakeDriver) ValidateOptions(map[string]string) error { return nil }
func (d fakeDriver) CreateNetwork(driver.Network) error    { return d.j.call("driver.CreateNetwork") }
func (d fakeDriver) DeleteNetwork(driver.Network) error    { return d.j.call("driver.DeleteNetwork") }
func (d fakeDriver) Restore(driver.Network, []driver.Endpoint) error {
	return d.j.call("driver.Restore")
}
func (d fakeDriver) Join(driver.Network, driver.Endpoint, netns.NsHandle) error {
	return d.j.call("driver.Join")
}
func (d fakeDriver) Leave(driver.Network, driver.Endpoint) error        { return d.j.call("driver.Leave") }
func (fakeDriver) EndpointPresent(driver.Network, driver.Endpoint) bool { return true }
func (d fakeDriver) JoinHandOff(driver.Network, driver.Endpoint) error {
	return d.j.call("driver.JoinHandOff")
}

// fakeIPAM is ipam.Local with every call journaled.
type fakeIPAM struct {
	j     *journal
	local *ipam.Local
}

func (f fakeIPAM) RequestPool(r ipam.PoolRequest) (ipam.PoolInfo, error) {
	if err := f.j.call("ipam.RequestPool"); err != nil {
		return ipam.PoolInfo{}, err
	}
	return f.local.RequestPool(r)
}
func (f fakeIPAM) ReleasePool(id ipam.PoolID) error {
	if err := f.j.call("ipam.ReleasePool"); err != nil {
		return err
	}
	return f.local.ReleasePool(id)
}
func (f fakeIPAM) RequestAddress(id ipam.PoolID, a netip.Addr) (netip.Addr, error) {
	if err := f.j.call("ipam.RequestAddress"); err != nil {
		return netip.Addr{}, err
	}
	return f.local.RequestAddress(id, a)
}
func (f fakeIPAM) ReleaseAddress(id ipam.PoolID, a netip.Addr) error {
	if err := f.j.call("ipam.ReleaseAddress"); err != nil {
		return err
	}
	return f.local.ReleaseAddress(id, a)
}

type fakeNamespaces struct {
	j      *journal
	exists map[string]bool
}

func (f fakeNamespaces) Create(path string) error {
	if err := f.j.call("ns.Create"); err != nil {
		return err
	}
	f.exists[path] = true
	return nil
}
func (f fakeNamespaces) Adopt(_, path string) error {
	if err := f.j.call("ns.Adopt"); err != nil {
		return err
	}
	f.exists[path] = true
	return nil
}
func (f fakeNamespaces) Delete(path string) error {
	delete(f.exists, path)
	return f.j.call("ns.Delete")
}
func (f fakeNamespaces) Exists(path string) bool { return f.exists[path] }
func (f fakeNamespaces) Open(string) (netns.NsHandle, error) {
	return netns.None(), f.j.call("ns.Open")
}
func (f fakeNamespaces) SetDefaultRoute(string, string, netip.Addr) error {
	return f.j.call("ns.SetDefaultRoute")
}

// noFirewall stands in for the firewall: the fake driver publishes no ports, so nothing
// reaches it but Close.
type noFirewall struct{}

func (noFirewall) AddNetwork(firewall.Network) error                       { return nil }
func (noFirewall) RemoveNetwork(string) error                              { return nil }
func (noFirewall) AddPorts(string, netip.Addr, []portmap.Mapping) error    { return nil }
func (noFirewall) RemovePorts(string, netip.Addr, []portmap.Mapping) error { return nil }
func (noFirewall) Sync(firewall.State) error                               { return nil }
func (noFirewall) Close() error                                            { return nil }

// newFakeController builds a controller on the fakes, a real store in a temporary directory
// and the predefined networks of no driver (the fake predefines none).
func newFakeController(t *testing.T) (*Controller, *journal, *ipam.Local, *store.Store) {
	t.Helper()
	j := &journal{}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg, err := driver.NewRegistry(fakeDriver{j})
	if err != nil {
		t.Fatal(err)
	}
	local := ipam.NewLocal()
	c, err := New(Config{Store: st, ExecRoot: t.TempDir(), Drivers: reg,
		IPAM: map[string]ipam.Allocator{"default": fakeIPAM{j, local}}, Namespaces: fakeNamespaces{j, map[string]bool{}},
		Firewall: noFirewall{}, NoConnectTranslation: true})
	if err != nil {
		t.Fatal(err)
	}
	return c, j, local, st
}

func records(t *testing.T, st *store.Store, bucket string) int {
	t.Helper()
	n := 0
	err := store.Load(st, bucket, func(string, *map[string]any) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// networkAndSandbox makes a network "n" (10.1.0.0/29) and the sandbox of container ctr.
func networkAndSandbox(t *testing.T, c *Controller, ctr string) Network {
	t.Helper()
	n, err := c.CreateNetwork(NetworkConfig{Name: "n", Driver: "fake", Pools: []PoolRequest{{Subnet: "10.1.0.0/29"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSandbox(ctr, ""); err != nil {
		t.Fatal(err)
	}
	return n
}

func twoPools() NetworkConfig {
	return NetworkConfig{Name: "n", Driver: "fake", Pools: []PoolRequest{{Subnet: "10.1.0.0/24"}, {Subnet: "10.2.0.0/24"}}}
}

func TestCreateNetworkRollback(t *testing.T) {
	tests := []struct {
		failAt string
		want   []string // the whole journal: steps, then undos in reverse order
	}{
		{"ipam.RequestPool#1", []string{"ipam.RequestPool"}},
		{"ipam.RequestPool#2", []string{"ipam.RequestPool", "ipam.RequestPool", "ipam.ReleasePool"}},
		{"driver.CreateNetwork", []string{"ipam.RequestPool", "ipam.RequestPool", "driver.CreateNetwork", "ipam.ReleasePool", "ipam.ReleasePool"}},
	}
	for _, tt := range tests {
		t.Run(tt.failAt, func(t *testing.T) {
			c, j, local, st := newFakeController(t)
			j.failAt = tt.failAt
			_, err := c.CreateNetwork(twoPools())
			if !errors.Is(err, errInjected) {
				t.Fatalf("CreateNetwork = %v, want the injected failure", err)
			}
			j.check(t, tt.want)
			if n := records(t, st, store.Networks); n != 0 {
				t.Errorf("%d network records left", n)
			}
			if len(c.Networks()) != 0 {
				t.Errorf("networks left: %v", c.Networks())
			}
			// The pools are free again: the same subnets can be requested.
			for _, s := range []string{"10.1.0.0/24", "10.2.0.0/24"} {
				if _, err := local.RequestPool(ipam.PoolRequest{Owner: "x", Config: ipam.Config{Subnet: netip.MustParsePrefix(s)}}); err != nil {
					t.Errorf("pool %s not released: %v", s, err)
				}
			}
			// And a network with them can be made once nothing fails.
			j.failAt, j.calls = "", nil
			if _, err := c.CreateNetwork(twoPools()); err != nil {
				t.Errorf("creating the network after the rollback: %v", err)
			}
		})
	}
}

func TestJoinRollback(t *testing.T) {
	const ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		failAt string
		want   []string
	}{
		{"ipam.RequestAddress", []string{"ipam.RequestAddress"}},
		{"ns.Open", []string{"ipam.RequestAddress", "ns.Open", "ipam.ReleaseAddress"}},
		{"driver.Join", []string{"ipam.RequestAddress", "ns.Open", "driver.Join", "ipam.ReleaseAddress"}},
		{"ns.SetDefaultRoute", []string{"ipam.RequestAddress", "ns.Open", "driver.Join", "ns.SetDefaultRoute", "driver.Leave", "ipam.ReleaseAddress"}},
	}
	for _, tt := range tests {
		t.Run(tt.failAt, func(t *testing.T) {
			c, j, _, st := newFakeController(t)
			n := networkAndSandbox(t, c, ctr)
			j.calls, j.failAt = nil, tt.failAt
			_, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c"})
			if !errors.Is(err, errInjected) {
				t.Fatalf("Join = %v, want the injected failure", err)
			}
			j.check(t, tt.want)
			if k := records(t, st, store.Endpoints); k != 0 {
				t.Errorf("%d endpoint records left", k)
			}
			if eps := c.SandboxEndpoints(ctr); len(eps) != 0 {
				t.Errorf("endpoints left: %+v", eps)
			}
			// The address was given back: the next join gets the first one again.
			j.failAt = ""
			ep, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c"})
			if err != nil || ep.Address.Addr() != netip.MustParseAddr("10.1.0.2") {
				t.Errorf("join after the rollback = %v, %v; want 10.1.0.2", ep.Address, err)
			}
		})
	}
}

// TestLeaveOrder checks the order that keeps an address from being handed out while an
// interface may still carry it: interface, then record, then address.
func TestLeaveOrder(t *testing.T) {
	const ctr = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	c, j, _, st := newFakeController(t)
	n := networkAndSandbox(t, c, ctr)
	if _, err := c.Join(ctr, n.ID, JoinOptions{ContainerName: "c"}); err != nil {
		t.Fatal(err)
	}
	// A failing unplug keeps the endpoint: record and address stay.
	j.calls, j.failAt = nil, "driver.Leave"
	if err := c.Leave(ctr, n.ID); !errors.Is(err, errInjected) {
		t.Fatalf("Leave = %v, want the injected failure", err)
	}
	if k := records(t, st, store.Endpoints); k != 1 || len(c.SandboxEndpoints(ctr)) != 1 {
		t.Errorf("after a failed unplug: %d records, %d endpoints; want both kept", k, len(c.SandboxEndpoints(ctr)))
	}
	j.calls, j.failAt = nil, ""
	if err := c.DeleteSandbox(ctr); err != nil {
		t.Fatal(err)
	}
	want := []string{"driver.Leave", "ipam.ReleaseAddress", "ns.Delete"}
	if !slices.Equal(j.calls, want) {
		t.Errorf("steps of a sandbox's removal: %v, want %v", j.calls, want)
	}
	if k := records(t, st, store.Endpoints); k != 0 {
		t.Errorf("%d endpoint records left", k)
	}
	// The network can go now, and its pool with it.
	j.calls = nil
	if err := c.RemoveNetwork(n.ID); err != nil {
		t.Fatal(err)
	}
	if want := []string{"driver.DeleteNetwork", "ipam.ReleasePool"}; !slices.Equal(j.calls, want) {
		t.Errorf("steps of a network's removal: %v, want %v", j.calls, want)
	}
}

// TestStartSandboxRollback fails a sandbox's start at each step and checks that everything done
// before is undone, last first: the endpoints already joined leave (interface, then address),
// the namespace goes, and no record or running sandbox is left.
func TestStartSandboxRollback(t *testing.T) {
	const ctr = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	joined := []string{"ipam.RequestAddress", "ns.Open", "driver.Join"}
	undoOne := []string{"driver.Leave", "ipam.ReleaseAddress"}
	cat := func(parts ...[]string) []string { return slices.Concat(parts...) }
	tests := []struct {
		name     string
		failAt   string
		badFiles bool
		want     []string
	}{
		{"namespace", "ns.Create", false, []string{"ns.Create"}},
		{"first join", "driver.Join#1", false, cat([]string{"ns.Create"}, joined, []string{"ipam.ReleaseAddress", "ns.Delete"})},
		{"default route", "ns.SetDefaultRoute", false, cat([]string{"ns.Create"}, joined, []string{"ns.SetDefaultRoute", "driver.Leave", "ipam.ReleaseAddress", "ns.Delete"})},
		{"second join", "driver.Join#2", false, cat([]string{"ns.Create"}, joined, []string{"ns.SetDefaultRoute"}, joined,
			[]string{"ipam.ReleaseAddress"}, undoOne, []string{"ns.Delete"})},
		{"files", "", true, cat([]string{"ns.Create"}, joined, []string{"ns.SetDefaultRoute"}, joined, undoOne, undoOne, []string{"ns.Delete"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, j, _, st := newFakeController(t)
			for _, name := range []string{"n1", "n2"} {
				subnet := map[string]string{"n1": "10.1.0.0/29", "n2": "10.2.0.0/29"}[name]
				if _, err := c.CreateNetwork(NetworkConfig{Name: name, Driver: "fake", Pools: []PoolRequest{{Subnet: subnet}}}); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			if tt.badFiles {
				// A file where the directory should be: writing the sandbox's files fails.
				dir = filepath.Join(dir, "file")
				if err := os.WriteFile(dir, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := SandboxConfig{ContainerID: ctr, ContainerName: "c", Hostname: "c", FilesDir: dir,
				Networks: []Attachment{{Network: "n1", Options: JoinOptions{ContainerName: "c"}}, {Network: "n2", Options: JoinOptions{ContainerName: "c"}}}}
			j.calls, j.failAt = nil, tt.failAt
			if _, err := c.StartSandbox(cfg); err == nil {
				t.Fatal("StartSandbox succeeded; want the failure")
			}
			j.check(t, tt.want)
			if k := records(t, st, store.Endpoints) + records(t, st, store.Sandboxes); k != 0 {
				t.Errorf("%d records left", k)
			}
			if c.sandbox(ctr) != nil {
				t.Error("a running sandbox is left")
			}
			// Nothing holds the container's name or addresses: it starts once nothing fails.
			j.failAt = ""
			cfg.FilesDir = t.TempDir()
			if _, err := c.StartSandbox(cfg); err != nil {
				t.Fatalf("starting after the rollback: %v", err)
			}
			if eps := c.SandboxEndpoints(ctr); len(eps) != 2 || eps[0].Address.Addr() != netip.MustParseAddr("10.1.0.2") {
				t.Errorf("endpoints after the rollback: %+v", eps)
			}
		})
	}
}
