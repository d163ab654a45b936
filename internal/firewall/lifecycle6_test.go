package firewall

import (
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/portmap"
)

// TestPortsLifecycle6: ports published to an IPv6 container address are read back exactly, a
// mapping of the other family is skipped, the same host port to another IPv6 address is a
// conflict while the container's IPv4 address may have it (another table), and RemovePorts
// and RemoveNetwork leave no IPv6 element behind.
func TestPortsLifecycle6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netAD)
	c6 := addr("fd00:30::2")
	ms := append(specs(t, "20000-20099:20000-20099", "5353:53/udp", "7000:7000/sctp"),
		mapping(hostAddr6, 8081, 80, portmap.TCP))
	skipped := mapping("127.0.0.1", 8082, 80, portmap.TCP) // IPv4 only: not for c6
	must(t, tb.fw.AddPorts("br-a", c6, append(ms, skipped)))
	got := tb.current()
	if want := published("br-a", "fd00:30::2", ms); !samePorts(got.Ports, want) {
		t.Fatalf("published %d ports, read back %d: %+v", len(want), len(got.Ports), got.Ports[:min(len(got.Ports), 5)])
	}
	if !reflect.DeepEqual(got.Networks, []Network{netAD}) {
		t.Fatalf("networks %+v, want %+v", got.Networks, []Network{netAD})
	}
	must(t, tb.fw.AddPorts("br-a", c6, ms)) // again: a no-op

	err := tb.fw.AddPorts("br-a", addr("fd00:30::3"), specs(t, "9000:90", "20050:80"))
	if !errors.Is(err, portmap.ErrAllocated) || !errdefs.Is(err, errdefs.KindConflict) {
		t.Fatalf("conflicting AddPorts: %v, want a conflict", err)
	}
	if n := len(tb.current().Ports); n != len(ms) {
		t.Fatalf("after a refused AddPorts %d ports are published, want %d", n, len(ms))
	}
	must(t, tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "20050:80")))

	must(t, tb.fw.RemovePorts("br-a", c6, append(ms, skipped)))
	want := published("br-a", "172.30.0.2", specs(t, "20050:80"))
	if p := tb.current().Ports; !reflect.DeepEqual(p, want) {
		t.Fatalf("after RemovePorts: %+v, want %+v", p, want)
	}
	must(t, tb.fw.RemovePorts("br-a", c6, ms)) // twice: nothing to do

	must(t, tb.fw.AddPorts("br-a", c6, specs(t, "8000-8009:80-89")))
	must(t, tb.fw.RemoveNetwork("br-a"))
	if st := tb.current(); len(st.Networks) != 0 || len(st.Ports) != 0 {
		t.Fatalf("after RemoveNetwork: %+v", st)
	}
	for _, fam := range []string{"ip", "ip6"} {
		if out := tb.nft("list", "table", fam, TableName); strings.Contains(out, "elements") {
			t.Fatalf("elements remain in table %s:\n%s", fam, out)
		}
	}
}

// samePorts reports whether got and want hold the same ports, in any order.
func samePorts(got, want []Published) bool {
	if len(got) != len(want) {
		return false
	}
	have := map[Published]bool{}
	for _, p := range got {
		have[p] = true
	}
	for _, p := range want {
		if !have[p] {
			return false
		}
	}
	return true
}

// TestSync6: Sync turns tables holding IPv6 leftovers (a network that no longer exists, stale,
// moved and foreign ports) into exactly the desired dual-stack state, skipping ports whose
// mapping does not apply to their address. A missing ip6 table (as a cnet without IPv6 leaves
// the host) is created by EnsureBase and filled by Sync without touching the ip table.
func TestSync6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	stale := Network{Bridge: "br-x", Subnets: []netip.Prefix{netip.MustParsePrefix("fd00:27::/64")}, Masquerade: true}
	tb.network(netAD)
	tb.network(stale)
	tb.network(netB6)
	tb.publish("br-x", specs(t, "7000-7009:7000-7009"), "fd00:27::2")
	tb.publish("br-a", specs(t, "8080:80", "8081:81"), "172.30.0.2", "fd00:30::2")
	if out, err := run(tb.host, "nft", "add", "element", "ip6", TableName, mapPortsAny, "{ tcp . 9999 : fd00:30::5 . 99 }"); err != nil {
		t.Fatal(err, out)
	}

	a := netAD
	a.ICC = false // changed while the daemon was down
	b := netB6
	b.Subnets = append(b.Subnets, netip.MustParsePrefix("fd00:32::/64"))
	applies := []Published{
		{Bridge: "br-a", ContainerIP: addr("172.30.0.2"), Mapping: mapping("", 8080, 80, portmap.TCP)},   // kept
		{Bridge: "br-a", ContainerIP: addr("fd00:30::2"), Mapping: mapping("", 8080, 80, portmap.TCP)},   // kept
		{Bridge: "br-a", ContainerIP: addr("fd00:30::9"), Mapping: mapping("", 8081, 81, portmap.TCP)},   // moved
		{Bridge: "br-b", ContainerIP: addr("fd00:31::2"), Mapping: mapping("::", 9002, 90, portmap.TCP)}, // new
		{Bridge: "br-b", ContainerIP: addr("fd00:31::2"), Mapping: mapping(hostAddr6, 9000, 90, portmap.UDP)},
	}
	want := State{Networks: []Network{a, b}, Ports: append(applies,
		Published{Bridge: "br-b", ContainerIP: addr("fd00:31::2"), Mapping: mapping("127.0.0.1", 9001, 90, portmap.TCP)})} // skipped
	keep := slices.Clone(applies) // as Current reads them back: :: as no address
	keep[3].HostIP = netip.Addr{}
	check := func(when string) {
		t.Helper()
		got := tb.current()
		if !reflect.DeepEqual(got.Networks, want.Networks) {
			t.Errorf("%s: networks %+v, want %+v", when, got.Networks, want.Networks)
		}
		if !reflect.DeepEqual(got.Ports, keep) {
			t.Errorf("%s: ports %+v, want %+v", when, got.Ports, keep)
		}
	}
	must(t, tb.fw.Sync(want))
	check("after Sync")
	must(t, tb.fw.Sync(want))
	check("after a second Sync")

	// The ip6 table is gone: EnsureBase makes it, leaving the ip table (its handle and
	// elements) as it was; Sync then fills it.
	ipTable := tb.nft("-a", "list", "table", "ip", TableName)
	if out, err := run(tb.host, "nft", "delete", "table", "ip6", TableName); err != nil {
		t.Fatal(err, out)
	}
	must(t, tb.fw.EnsureBase())
	if after := tb.nft("-a", "list", "table", "ip", TableName); after != ipTable {
		t.Errorf("EnsureBase changed the ip table:\nbefore:\n%s\nafter:\n%s", ipTable, after)
	}
	if out := tb.nft("list", "table", "ip6", TableName); strings.Contains(out, "elements") || !strings.Contains(out, "chain forward") {
		t.Errorf("EnsureBase made the ip6 table:\n%s", out)
	}
	must(t, tb.fw.Sync(want))
	check("after the ip6 table was deleted")
	if after := tb.nft("-a", "list", "table", "ip", TableName); after != ipTable {
		t.Errorf("Sync changed the ip table:\nbefore:\n%s\nafter:\n%s", ipTable, after)
	}

	dup := want
	dup.Ports = append([]Published{{Bridge: "br-b", ContainerIP: addr("fd00:31::5"), Mapping: mapping("", 8080, 80, portmap.TCP)}}, want.Ports...)
	if err := tb.fw.Sync(dup); !errdefs.Is(err, errdefs.KindConflict) {
		t.Errorf("Sync with an IPv6 host port published twice: %v, want a conflict", err)
	}
	must(t, tb.fw.Sync(State{}))
	if st := tb.current(); len(st.Networks)+len(st.Ports) != 0 {
		t.Errorf("Sync to an empty state left %+v", st)
	}
}

// TestWithoutIPv6: on a kernel without IPv6 (booted with ipv6.disable=1, which a test cannot
// do: the IPv6 layout is dropped as New drops it there) the firewall programs the ip table
// alone, IPv6 elements of a dual-stack network are left out, and nothing touches ip6.
func TestWithoutIPv6(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	fw, err := New(tb.nsFd(tb.host))
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	fw.layouts[tableIP6] = nil
	tb.network(netAD)       // the bridge, through the testbed's own firewall (both tables)...
	must(t, tb.fw.Delete()) // ...whose tables go: start from none
	st := State{Networks: []Network{netAD}, Ports: []Published{
		{Bridge: "br-a", ContainerIP: addr("172.30.0.2"), Mapping: mapping("", 8080, 80, portmap.TCP)},
		{Bridge: "br-a", ContainerIP: addr("fd00:30::2"), Mapping: mapping("::", 8080, 80, portmap.TCP)},
	}}
	must(t, fw.Sync(st))
	must(t, fw.AddPorts("br-a", addr("fd00:30::3"), []portmap.Mapping{mapping("::", 8081, 80, portmap.TCP)}))
	if out := tb.nft("list", "tables"); strings.Contains(out, "ip6 "+TableName) || !strings.Contains(out, "ip "+TableName) {
		t.Fatalf("tables without IPv6:\n%s", out)
	}
	got, err := fw.Current()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Ports) != 1 || got.Ports[0].ContainerIP != addr("172.30.0.2") || len(got.Networks) != 1 ||
		!slices.Equal(got.Networks[0].Subnets, []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}) {
		t.Errorf("Current without IPv6: %+v", got)
	}
	must(t, fw.RemoveNetwork("br-a"))
}
