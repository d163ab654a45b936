package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/portmap"
)

func published(bridge, cip string, ms []portmap.Mapping) []Published {
	out := make([]Published, len(ms))
	for i, m := range ms {
		out[i] = Published{Bridge: bridge, ContainerIP: addr(cip), Mapping: m}
	}
	return out
}

func (tb *testbed) current() State {
	tb.t.Helper()
	st, err := tb.fw.Current()
	if err != nil {
		tb.t.Fatal(err)
	}
	return st
}

// TestPortsLifecycle: ports are published and read back exactly, publishing again is a no-op,
// a host port already sent elsewhere is refused with nothing changed, and RemovePorts and
// RemoveNetwork leave no element behind (and may be repeated).
func TestPortsLifecycle(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	if err := tb.fw.AddNetwork(netA); err != nil {
		t.Fatalf("adding a network again: %v", err)
	}
	ms := specs(t, "20000-20999:20000-20999", "127.0.0.1:8081:80", "5353:53/udp", "7000:7000/sctp")
	c1 := addr("172.30.0.2")
	if err := tb.fw.AddPorts("br-a", c1, ms); err != nil {
		t.Fatal(err)
	}
	want := published("br-a", "172.30.0.2", ms)
	got := tb.current()
	if len(got.Ports) != len(want) {
		t.Fatalf("%d ports published, want %d", len(got.Ports), len(want))
	}
	byKey := map[string]Published{}
	for _, p := range got.Ports {
		byKey[p.Mapping.String()] = p
	}
	for _, w := range want {
		if g, ok := byKey[w.Mapping.String()]; !ok || g != w {
			t.Fatalf("published %+v, read back %+v", w, g)
		}
	}
	if !reflect.DeepEqual(got.Networks, []Network{netA}) {
		t.Fatalf("networks %+v, want %+v", got.Networks, []Network{netA})
	}
	if err := tb.fw.AddPorts("br-a", c1, ms); err != nil {
		t.Fatalf("publishing the same ports again: %v", err)
	}

	// The same host port to another container: refused, nothing changed.
	err := tb.fw.AddPorts("br-a", addr("172.30.0.3"), specs(t, "9000:90", "20500:80"))
	if !errors.Is(err, portmap.ErrAllocated) || !errdefs.Is(err, errdefs.KindConflict) {
		t.Fatalf("conflicting AddPorts: %v, want a conflict", err)
	}
	if n := len(tb.current().Ports); n != len(want) {
		t.Fatalf("after a refused AddPorts %d ports are published, want %d", n, len(want))
	}

	if err := tb.fw.RemovePorts("br-a", c1, ms); err != nil {
		t.Fatal(err)
	}
	if p := tb.current().Ports; len(p) != 0 {
		t.Fatalf("after RemovePorts %d ports remain: %v", len(p), p[:min(len(p), 5)])
	}
	if err := tb.fw.RemovePorts("br-a", c1, ms); err != nil {
		t.Fatalf("removing ports twice: %v", err)
	}

	// Removing a mix of present and absent ports removes the present ones, and leaves alone a
	// port that now belongs to another container.
	if err := tb.fw.AddPorts("br-a", c1, specs(t, "8000-8009:80-89")); err != nil {
		t.Fatal(err)
	}
	if err := tb.fw.AddPorts("br-a", addr("172.30.0.3"), specs(t, "9000:90")); err != nil {
		t.Fatal(err)
	}
	if err := tb.fw.RemovePorts("br-a", c1, specs(t, "8000-8019:80-99", "9000:90")); err != nil {
		t.Fatal(err)
	}
	if p := tb.current().Ports; len(p) != 1 || p[0].HostPort != 9000 || p[0].ContainerIP != addr("172.30.0.3") {
		t.Fatalf("after removing a partly absent set: %+v, want only 9000 of 172.30.0.3", p)
	}

	// RemoveNetwork takes the ports still published into it along.
	if err := tb.fw.AddPorts("br-a", c1, specs(t, "8000-8009:80-89")); err != nil {
		t.Fatal(err)
	}
	if err := tb.fw.RemoveNetwork("br-a"); err != nil {
		t.Fatal(err)
	}
	if st := tb.current(); len(st.Networks) != 0 || len(st.Ports) != 0 {
		t.Fatalf("after RemoveNetwork: %+v", st)
	}
	if err := tb.fw.RemoveNetwork("br-a"); err != nil {
		t.Fatalf("removing a network twice: %v", err)
	}
	if out := tb.nft("list", "table", "ip", TableName); strings.Contains(out, "elements") {
		t.Fatalf("elements remain:\n%s", out)
	}
}

// TestSync: Sync turns a table holding leftovers (a network that no longer exists, stale and
// changed ports) into exactly the desired state, and rebuilds the table and its rules when
// they were deleted.
func TestSync(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	stale := Network{Bridge: "br-x", Subnets: []netip.Prefix{netip.MustParsePrefix("172.27.0.0/16")}, Masquerade: true}
	tb.network(netA)
	tb.network(stale)
	tb.network(netB)
	must(t, tb.fw.AddPorts("br-x", addr("172.27.0.2"), specs(t, "7000-7099:7000-7099")))
	must(t, tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "8080:80", "8081:81")))
	must(t, tb.fw.AddPorts("br-a", addr("172.30.0.3"), specs(t, "127.0.0.1:8082:82")))

	a := netA
	a.ICC = false // changed while the daemon was down
	want := State{
		Networks: []Network{a, netB},
		Ports: append(append(published("br-a", "172.30.0.2", specs(t, "8080:80")), // kept
			published("br-a", "172.30.0.9", specs(t, "8081:81"))...), // moved to another container
			published("br-b", "172.31.0.2", specs(t, "10.99.0.1:9000:90/udp"))...), // new
	}
	must(t, tb.fw.Sync(want))
	check := func(when string) {
		t.Helper()
		got := tb.current()
		if !reflect.DeepEqual(got.Networks, want.Networks) {
			t.Errorf("%s: networks %+v, want %+v", when, got.Networks, want.Networks)
		}
		if fmt.Sprint(got.Ports) != fmt.Sprint(want.Ports) || len(got.Ports) != len(want.Ports) {
			t.Errorf("%s: ports %+v, want %+v", when, got.Ports, want.Ports)
		}
		for i := range got.Ports {
			if i < len(want.Ports) && got.Ports[i] != want.Ports[i] {
				t.Errorf("%s: port %+v, want %+v", when, got.Ports[i], want.Ports[i])
			}
		}
	}
	check("after Sync")
	must(t, tb.fw.Sync(want))
	check("after a second Sync")

	// Someone deleted a rule, then the whole table.
	if out, err := run(tb.host, "nft", "flush", "chain", "ip", TableName, "postrouting"); err != nil {
		t.Fatal(err, out)
	}
	must(t, tb.fw.Sync(want))
	if n := strings.Count(tb.nft("list", "chain", "ip", TableName, "postrouting"), "masquerade comment"); n != 3 {
		t.Errorf("Sync restored %d postrouting rules, want 3", n)
	}
	if out, err := run(tb.host, "nft", "delete", "table", "ip", TableName); err != nil {
		t.Fatal(err, out)
	}
	must(t, tb.fw.Sync(want))
	check("after the table was deleted")

	dup := want
	dup.Ports = append(published("br-b", "172.31.0.5", specs(t, "8080:80")), want.Ports...)
	if err := tb.fw.Sync(dup); !errdefs.Is(err, errdefs.KindConflict) {
		t.Errorf("Sync with a host port published twice: %v, want a conflict", err)
	}
	must(t, tb.fw.Sync(State{}))
	if st := tb.current(); len(st.Networks)+len(st.Ports) != 0 {
		t.Errorf("Sync to an empty state left %+v", st)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestOwnTableOnly: other tables (the user's, Docker-like ones, one even named cnet in another
// family) are untouched by everything the firewall does, and Delete removes cnet's two tables
// and nothing else. Tables named cnet with another layout are rebuilt by EnsureBase.
func TestOwnTableOnly(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	must(t, tb.fw.Delete())
	others := `table ip user {
	set keep { type ipv4_addr; elements = { 1.2.3.4 } }
	chain forward { type filter hook forward priority 0; policy accept; ip daddr @keep counter drop; }
}
table inet cnet {
	chain input { type filter hook input priority 0; policy accept; counter; }
}
table ip cnet {
	set bridges { type ipv4_addr; }
}
table ip6 cnet {
	set bridges { type ipv6_addr; }
}
`
	if out, err := run(tb.host, "nft", "-f", writeFile(t, others)); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	before := tb.nft("list", "table", "ip", "user") + tb.nft("list", "table", "inet", TableName)

	must(t, tb.fw.EnsureBase())
	for _, fam := range []string{"ip", "ip6"} {
		if out := tb.nft("list", "set", fam, TableName, "bridges"); !strings.Contains(out, "type ifname") {
			t.Fatalf("EnsureBase kept a foreign layout in %s:\n%s", fam, out)
		}
	}
	tb.network(netA)
	must(t, tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "8080:80")))
	must(t, tb.fw.Sync(State{Networks: []Network{netA}}))
	must(t, tb.fw.RemoveNetwork("br-a"))
	must(t, tb.fw.Delete())
	must(t, tb.fw.Delete())

	after := tb.nft("list", "table", "ip", "user") + tb.nft("list", "table", "inet", TableName)
	if before != after {
		t.Errorf("other tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if out := tb.nft("list", "tables"); strings.Contains(out, "table ip "+TableName) || strings.Contains(out, "table ip6 "+TableName) {
		t.Errorf("Delete left cnet's tables:\n%s", out)
	}
}

// TestAddNetworkErrors: a missing bridge or bad input is refused before anything changes.
func TestAddNetworkErrors(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	err := tb.fw.AddNetwork(Network{Bridge: "br-missing", Subnets: netA.Subnets, Masquerade: true, ICC: true})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("AddNetwork of a missing bridge: %v", err)
	}
	if st := tb.current(); len(st.Networks) != 0 {
		t.Fatalf("a refused AddNetwork left %+v", st)
	}
	for _, n := range []Network{
		{Bridge: "br-this-name-is-too-long", Subnets: netA.Subnets},
		{Bridge: "br-a", Subnets: []netip.Prefix{netip.MustParsePrefix("ffff::/16")}},
	} {
		if err := tb.fw.AddNetwork(n); !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("AddNetwork(%+v) = %v, want invalid input", n, err)
		}
	}
	if err := tb.fw.AddPorts("br-a", addr("172.30.0.2"), specs(t, "80")); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Errorf("AddPorts of a mapping without host port: %v, want invalid input", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := t.TempDir() + "/ruleset.nft"
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWholePortRange publishes all 65,535 UDP ports of one container in one transaction
// (about 4 MB of netlink messages: the socket buffers must take it) and removes them.
func TestWholePortRange(t *testing.T) {
	t.Parallel()
	tb := newTestbed(t)
	tb.network(netA)
	ms := specs(t, "1-65535:1-65535/udp")
	c := addr("172.30.0.2")
	must(t, tb.fw.AddPorts("br-a", c, ms))
	if n := len(tb.current().Ports); n != 65535 {
		t.Fatalf("%d ports published, want 65535", n)
	}
	must(t, tb.fw.Sync(State{Networks: []Network{netA}, Ports: published("br-a", "172.30.0.2", ms[:1000])}))
	if n := len(tb.current().Ports); n != 1000 {
		t.Fatalf("after Sync %d ports published, want 1000", n)
	}
	must(t, tb.fw.RemovePorts("br-a", c, ms))
	if n := len(tb.current().Ports); n != 0 {
		t.Fatalf("%d ports left", n)
	}
}
