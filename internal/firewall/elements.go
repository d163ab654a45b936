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
	Subnets    []netip.Prefix // IPv4 subnets of the network
	Masquerade bool           // enable_ip_masquerade (Docker's default: true); ignored if Internal
	ICC        bool           // enable_icc (Docker's default: true)
	Internal   bool           // --internal: nothing forwarded beyond the bridge
}

// Published is one published port of one container, as it is programmed: the host port is
// chosen (HostPort set, HostPortEnd 0) and a zero or 0.0.0.0 HostIP means all addresses (the
// caller applies host_binding_ipv4 before).
type Published struct {
	Bridge      string     // the container's network's bridge, recorded with the element
	ContainerIP netip.Addr // where the port goes
	portmap.Mapping
}

// State is the whole of cnet's firewall state: what Sync makes the kernel hold and what
// Current reads back.
type State struct {
	Networks []Network
	Ports    []Published
}

// elements is a batch of set elements by set name.
type elements map[string][]nftables.SetElement

func (e elements) add(set string, el ...nftables.SetElement) { e[set] = append(e[set], el...) }

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

// networkElements returns n's elements: the bridge in bridges and same_bridge, its pair in
// no_icc when icc is off, in internal when internal, and its subnets (commented with the
// bridge, so RemoveNetwork can find them) in subnets and, when masqueraded, in masquerade.
func networkElements(n Network) (elements, error) {
	if err := checkBridge(n.Bridge); err != nil {
		return nil, err
	}
	e := elements{}
	br := ifname(n.Bridge)
	pair := append(ifname(n.Bridge), br...)
	e.add(setBridges, nftables.SetElement{Key: br})
	e.add(setSameBridge, nftables.SetElement{Key: pair})
	if !n.ICC {
		e.add(setNoICC, nftables.SetElement{Key: pair})
	}
	if n.Internal {
		e.add(setInternal, nftables.SetElement{Key: br})
	}
	for _, p := range n.Subnets {
		iv, err := interval(p, n.Bridge)
		if err != nil {
			return nil, err
		}
		e.add(setSubnets, iv...)
		if n.Masquerade && !n.Internal {
			e.add(setMasquerade, iv...)
		}
	}
	return e, nil
}

// interval is a prefix as an interval set holds it: its first address, commented, and,
// flagged as the end, the address after its last.
func interval(p netip.Prefix, comment string) ([]nftables.SetElement, error) {
	if !p.IsValid() || !p.Addr().Is4() {
		return nil, errdefs.Invalid("invalid subnet %s: cnet firewalls IPv4 subnets only", p)
	}
	p = p.Masked()
	start := p.Addr().As4()
	last := binary.BigEndian.Uint32(start[:]) | (1<<(32-p.Bits()) - 1)
	if last == 0xffffffff {
		return nil, errdefs.Invalid("subnet %s reaches the end of the address space: not supported", p)
	}
	end := binary.BigEndian.AppendUint32(nil, last+1)
	return []nftables.SetElement{
		{Key: start[:], Comment: comment},
		{Key: end, IntervalEnd: true}, // the kernel takes no comment on an end
	}, nil
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

// portElement returns the map and element that publish p. Keys and values are concatenations
// padded to 4-byte words as the kernel's registers hold them:
//
//	ports_any: proto 0 0 0 | port port 0 0            -> addr addr addr addr | port port 0 0
//	ports_ip:  addr addr addr addr | proto 0 0 0 | port port 0 0 -> (same)
func portElement(p Published) (string, nftables.SetElement, error) {
	if err := checkBridge(p.Bridge); err != nil {
		return "", nftables.SetElement{}, err
	}
	if !p.ContainerIP.Is4() {
		return "", nftables.SetElement{}, errdefs.Invalid("invalid container address %s for port %s: want IPv4", p.ContainerIP, p.Mapping)
	}
	if p.HostPort == 0 || p.HostPortEnd != 0 || p.ContainerPort == 0 {
		return "", nftables.SetElement{}, errdefs.Invalid("port %s has no host port chosen: reserve it first", p.Mapping)
	}
	if p.HostIP.IsValid() && !p.HostIP.Is4() {
		return "", nftables.SetElement{}, errdefs.Invalid("port %s: host address is not IPv4", p.Mapping)
	}
	proto, err := protoNum(p.Proto)
	if err != nil {
		return "", nftables.SetElement{}, err
	}
	cip := p.ContainerIP.As4()
	val := append(cip[:], byte(p.ContainerPort>>8), byte(p.ContainerPort), 0, 0)
	key := []byte{proto, 0, 0, 0, byte(p.HostPort >> 8), byte(p.HostPort), 0, 0}
	set := mapPortsAny
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		hip := p.HostIP.As4()
		key = append(hip[:], key...)
		set = mapPortsIP
	}
	return set, nftables.SetElement{Key: key, Val: val, Comment: p.Bridge}, nil
}

// decodePort is the inverse of portElement.
func decodePort(set string, el nftables.SetElement) (Published, bool) {
	key := el.Key
	var p Published
	if set == mapPortsIP {
		if len(key) != 12 {
			return p, false
		}
		p.HostIP = netip.AddrFrom4([4]byte(key[:4]))
		key = key[4:]
	} else if len(key) != 8 {
		return p, false
	}
	if len(el.Val) != 8 {
		return p, false
	}
	p.Proto = protoName(key[0])
	p.HostPort = binary.BigEndian.Uint16(key[4:6])
	p.ContainerIP = netip.AddrFrom4([4]byte(el.Val[:4]))
	p.ContainerPort = binary.BigEndian.Uint16(el.Val[4:6])
	p.Bridge = el.Comment
	return p, true
}

func portElements(bridge string, containerIP netip.Addr, ms []portmap.Mapping) (elements, error) {
	e := elements{}
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		set, el, err := portElement(Published{Bridge: bridge, ContainerIP: containerIP, Mapping: m})
		if err != nil {
			return nil, err
		}
		k := set + string(el.Key)
		if seen[k] {
			return nil, errdefs.Invalid("host port %s is given twice", m)
		}
		seen[k] = true
		e.add(set, el)
	}
	return e, nil
}
