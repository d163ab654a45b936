package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/portmap"
)

// Network is what the firewall needs to know about a bridge network.
type Network struct {
	Bridge     string         // the Linux bridge, e.g. br-0123456789ab or cnet0
	Subnets    []netip.Prefix // subnets of the network, IPv4 and IPv6
	Masquerade bool           // enable_ip_masquerade (Docker's default: true); ignored if Internal
	ICC        bool           // enable_icc (Docker's default: true)
	Internal   bool           // --internal: nothing forwarded beyond the bridge
}

// Published is one published port of one container address, as it is programmed: the host
// port is chosen (HostPort set, HostPortEnd 0). A zero or 0.0.0.0 HostIP means all addresses
// of the ContainerIP's family (the caller applies host_binding_ipv4 before), :: all IPv6
// addresses; see Applies.
type Published struct {
	Bridge      string     // the container's network's bridge, recorded with the element
	ContainerIP netip.Addr // where the port goes, IPv4 or IPv6
	portmap.Mapping
}

// State is the whole of cnet's firewall state: what Sync makes the kernel hold and what
// Current reads back.
type State struct {
	Networks []Network
	Ports    []Published
}

// Applies reports whether m is published to a container address of containerIP's family. A
// mapping with a host address reaches a container address of that address's family only, as
// in Docker, where an explicit 0.0.0.0 is IPv4 only and :: IPv6 only; one without host address
// is on every address of both families. (The controller gives every mapping its address:
// Docker's default `-p 8080:80` becomes a 0.0.0.0 mapping and, for a container with IPv6, a
// :: one, each with its own reservation.)
func Applies(containerIP netip.Addr, m portmap.Mapping) bool {
	if !containerIP.IsValid() {
		return false
	}
	return !m.HostIP.IsValid() || m.HostIP.Is6() == containerIP.Is6()
}

// elements is a batch of one table's set elements by set name.
type elements map[string][]nftables.SetElement

func (e elements) add(set string, el ...nftables.SetElement) { e[set] = append(e[set], el...) }

func (e elements) empty() bool {
	for _, els := range e {
		if len(els) > 0 {
			return false
		}
	}
	return true
}

// batch is set elements of both tables, by table index (tableIP, tableIP6).
type batch [nTables]elements

func newBatch() batch { return batch{elements{}, elements{}} }

func (b batch) empty() bool { return b[tableIP].empty() && b[tableIP6].empty() }

// both adds el to set in both tables.
func (b batch) both(set string, el ...nftables.SetElement) {
	for _, e := range b {
		e.add(set, el...)
	}
}

// tableOf is the index of the table that holds elements about address a.
func tableOf(a netip.Addr) int {
	if a.Is4() {
		return tableIP
	}
	return tableIP6
}

func checkBridge(name string) error {
	if name == "" || len(name) >= 16 {
		return errdefs.Invalid("invalid bridge name %q: an interface name is 1 to 15 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 || name[i] == '/' {
			return errdefs.Invalid("invalid bridge name %q", name)
		}
	}
	return nil
}

// checkAddr refuses what cannot be an address on the wire of one family: the zero Addr, an
// IPv4-mapped IPv6 address (which would land in the ip6 table while the traffic is IPv4) and
// a zone.
func checkAddr(a netip.Addr, what string) error {
	if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
		return errdefs.Invalid("invalid %s %s: want an IPv4 or IPv6 address (not IPv4-mapped, without zone)", what, a)
	}
	return nil
}

// networkElements returns n's elements. Its bridge goes to both tables, so that isolation,
// --internal and enable_icc=false hold for IPv4 and IPv6 alike: in bridges and same_bridge,
// its pair in no_icc when icc is off, in internal when internal. Each subnet (commented with
// the bridge, so RemoveNetwork can find it) goes to the subnets and, when masqueraded, the
// masquerade set of the table of its family.
func networkElements(n Network) (batch, error) {
	if err := checkBridge(n.Bridge); err != nil {
		return batch{}, err
	}
	b := newBatch()
	br := ifname(n.Bridge)
	pair := append(ifname(n.Bridge), br...)
	b.both(setBridges, nftables.SetElement{Key: br})
	b.both(setSameBridge, nftables.SetElement{Key: pair})
	if !n.ICC {
		b.both(setNoICC, nftables.SetElement{Key: pair})
	}
	if n.Internal {
		b.both(setInternal, nftables.SetElement{Key: br})
	}
	for _, p := range n.Subnets {
		iv, err := interval(p, n.Bridge)
		if err != nil {
			return batch{}, err
		}
		e := b[tableOf(p.Addr())]
		e.add(setSubnets, iv...)
		if n.Masquerade && !n.Internal {
			e.add(setMasquerade, iv...)
		}
	}
	return b, nil
}

// interval is a prefix as an interval set holds it: its first address, commented, and,
// flagged as the end, the address after its last (4 or 16 bytes, by the prefix's family).
func interval(p netip.Prefix, comment string) ([]nftables.SetElement, error) {
	if !p.IsValid() || p.Addr().Is4In6() {
		return nil, errdefs.Invalid("invalid subnet %s: want an IPv4 or IPv6 prefix", p)
	}
	p = p.Masked()
	end := lastAddr(p).Next()
	if !end.IsValid() {
		return nil, errdefs.Invalid("subnet %s reaches the end of the address space: not supported", p)
	}
	return []nftables.SetElement{
		{Key: p.Addr().AsSlice(), Comment: comment},
		{Key: end.AsSlice(), IntervalEnd: true}, // the kernel takes no comment on an end
	}, nil
}

// lastAddr is the last address of the masked prefix p: its host bits all set.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		if bit := p.Bits() - 8*i; bit <= 0 {
			b[i] = 0xff
		} else if bit < 8 {
			b[i] |= 0xff >> bit
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// protoNum is the IP protocol number nft's meta l4proto yields.
func protoNum(proto string) (byte, error) {
	switch proto {
	case portmap.TCP:
		return 6, nil
	case portmap.UDP:
		return 17, nil
	case portmap.SCTP:
		return 132, nil
	}
	return 0, errdefs.Invalid("invalid protocol %q: want tcp, udp or sctp", proto)
}

func protoName(n byte) string {
	switch n {
	case 6:
		return portmap.TCP
	case 17:
		return portmap.UDP
	case 132:
		return portmap.SCTP
	}
	return fmt.Sprint(n)
}

// portElement returns the table (of the container address's family), map and element that
// publish p. Keys and values are concatenations padded to 4-byte words as the kernel's
// registers hold them (an address is 4 or 16 bytes):
//
//	ports_any: proto 0 0 0 | port port 0 0                  -> addr... | port port 0 0
//	ports_ip:  addr... | proto 0 0 0 | port port 0 0        -> (same)
//
// A 0.0.0.0 or zero host address, and :: for IPv6, go to ports_any; another one to ports_ip,
// and only with a container address of its own family.
func portElement(p Published) (int, string, nftables.SetElement, error) {
	fail := func(err error) (int, string, nftables.SetElement, error) {
		return 0, "", nftables.SetElement{}, err
	}
	if err := checkBridge(p.Bridge); err != nil {
		return fail(err)
	}
	if err := checkAddr(p.ContainerIP, "container address"); err != nil {
		return fail(fmt.Errorf("port %s: %w", p.Mapping, err))
	}
	if p.HostPort == 0 || p.HostPortEnd != 0 || p.ContainerPort == 0 {
		return fail(errdefs.Invalid("port %s has no host port chosen: reserve it first", p.Mapping))
	}
	proto, err := protoNum(p.Proto)
	if err != nil {
		return fail(err)
	}
	all := !p.HostIP.IsValid() || p.HostIP == netip.IPv4Unspecified() ||
		(p.ContainerIP.Is6() && p.HostIP == netip.IPv6Unspecified())
	if !all {
		if err := checkAddr(p.HostIP, "host address"); err != nil {
			return fail(fmt.Errorf("port %s: %w", p.Mapping, err))
		}
		if p.HostIP.Is4() != p.ContainerIP.Is4() {
			return fail(errdefs.Invalid("port %s: host address %s and container address %s are of different families", p.Mapping, p.HostIP, p.ContainerIP))
		}
	}
	val := append(p.ContainerIP.AsSlice(), byte(p.ContainerPort>>8), byte(p.ContainerPort), 0, 0)
	key := []byte{proto, 0, 0, 0, byte(p.HostPort >> 8), byte(p.HostPort), 0, 0}
	set := mapPortsAny
	if !all {
		key = append(p.HostIP.AsSlice(), key...)
		set = mapPortsIP
	}
	return tableOf(p.ContainerIP), set, nftables.SetElement{Key: key, Val: val, Comment: p.Bridge}, nil
}

// decodePort is the inverse of portElement, for an element of either table: the family is
// the value's length (an address and a port word: 8 or 20 bytes), and a ports_ip key holds an
// address of the same length before the protocol and port words. A v6 element of ports_any
// comes back with a zero HostIP, whether it was published with none, 0.0.0.0 or ::.
func decodePort(set string, el nftables.SetElement) (Published, bool) {
	var p Published
	if len(el.Val) != 4+4 && len(el.Val) != 16+4 {
		return p, false
	}
	alen := len(el.Val) - 4
	key := el.Key
	if set == mapPortsIP {
		if len(key) != alen+8 {
			return p, false
		}
		p.HostIP, _ = netip.AddrFromSlice(key[:alen])
		key = key[alen:]
	} else if len(key) != 8 {
		return p, false
	}
	p.Proto = protoName(key[0])
	p.HostPort = binary.BigEndian.Uint16(key[4:6])
	p.ContainerIP, _ = netip.AddrFromSlice(el.Val[:alen])
	p.ContainerPort = binary.BigEndian.Uint16(el.Val[alen : alen+2])
	p.Bridge = el.Comment
	return p, true
}

// portElements returns the elements publishing those of ms that Applies to containerIP.
func portElements(bridge string, containerIP netip.Addr, ms []portmap.Mapping) (batch, int, error) {
	if err := checkAddr(containerIP, "container address"); err != nil {
		return batch{}, 0, err
	}
	b := newBatch()
	seen := make(map[string]bool, len(ms))
	n := 0
	for _, m := range ms {
		if !Applies(containerIP, m) {
			continue
		}
		t, set, el, err := portElement(Published{Bridge: bridge, ContainerIP: containerIP, Mapping: m})
		if err != nil {
			return batch{}, 0, err
		}
		k := set + string(el.Key)
		if seen[k] {
			return batch{}, 0, errdefs.Invalid("host port %s is given twice", m)
		}
		seen[k] = true
		b[t].add(set, el)
		n++
	}
	return b, n, nil
}
