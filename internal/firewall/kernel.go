package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/nldump"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// configureBridge applies the per-bridge kernel settings n needs. Both are idempotent.
func (f *Firewall) configureBridge(n Network) error {
	return f.inNS(func() error {
		if !n.Internal {
			if err := routeLocalnet(n.Bridge); err != nil {
				return err
			}
		}
		if !n.ICC {
			if err := bridgeNFCallIPTables(n.Bridge); err != nil {
				return err
			}
		}
		return nil
	})
}

// routeLocalnet sets net.ipv4.conf.<bridge>.route_localnet=1: without it the kernel refuses
// to route a packet with a 127.0.0.1 source out of a non-loopback interface, which is what a
// connection from the host to 127.0.0.1:PORT becomes after DNAT. The guard chain keeps the
// setting from exposing the host's loopback (see the package documentation).
func routeLocalnet(bridge string) error {
	path := "/proc/sys/net/ipv4/conf/" + bridge + "/route_localnet"
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("setting route_localnet on %s: the bridge does not exist (create it before adding its network to the firewall): %w", bridge, err)
		}
		return fmt.Errorf("setting route_localnet on %s: %w", bridge, err)
	}
	return nil
}

// bridgeNFCallIPTables turns on the bridge's own nf_call_iptables and nf_call_ip6tables
// options, so that IPv4 and IPv6 bridged between its ports pass the ip and ip6 families'
// forward hooks, where the no_icc sets drop them. It needs br_netfilter, which is loaded (with
// modprobe) if it is missing.
func bridgeNFCallIPTables(bridge string) error {
	if err := ensureBrNetfilter(); err != nil {
		return err
	}
	link, err := nldump.LinkByName(nil, bridge)
	if err != nil {
		return fmt.Errorf("enable_icc=false on %s: finding the bridge: %w", bridge, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("enable_icc=false on %s: it is a %s, not a bridge", bridge, link.Type())
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_NF_CALL_IPTABLES, []byte{1})
	data.AddRtAttr(nl.IFLA_BR_NF_CALL_IP6TABLES, []byte{1})
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("enable_icc=false on %s: setting the bridge's nf_call_iptables and nf_call_ip6tables: %w", bridge, err)
	}
	return nil
}

// ensureBrNetfilter makes sure br_netfilter is there: its sysctls appear under
// /proc/sys/net/bridge once it is loaded or built in.
func ensureBrNetfilter() error {
	const knob = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if _, err := os.Stat(knob); err == nil {
		return nil
	}
	out, err := exec.Command("modprobe", "br_netfilter").CombinedOutput()
	if _, serr := os.Stat(knob); serr == nil {
		return nil
	}
	return fmt.Errorf("enable_icc=false needs the br_netfilter kernel module, which could not be loaded (modprobe br_netfilter: %v %s)", err, out)
}

// udpFlows matches conntrack entries of UDP flows that were DNATed to unpublished ports.
type udpFlows map[udpFlow]bool

type udpFlow struct {
	hostPort      uint16
	container     netip.Addr
	containerPort uint16
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter: the original direction went to
// the host port, the reply comes from the container's port.
func (u udpFlows) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	if c.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	ip, ok := netip.AddrFromSlice(c.Reverse.SrcIP)
	return ok && u[udpFlow{c.Forward.DstPort, ip.Unmap(), c.Reverse.SrcPort}]
}

// forgetUDPFlows deletes the conntrack entries of UDP flows to the unpublished ports among
// removed (elements of the port maps of both tables). UDP has no end of connection: without
// this, a client that keeps sending from the same port would go on reaching the old container
// through the stale entry, even once the host port is published to another container (Docker
// does the same). TCP connections end on their own and are left alone.
func (f *Firewall) forgetUDPFlows(removed batch) error {
	u := udpFlows{}
	var fams []netlink.InetFamily
	for t, e := range removed {
		n := len(u)
		for _, set := range []string{mapPortsAny, mapPortsIP} {
			for _, el := range e[set] {
				if p, ok := decodePort(set, el); ok && p.Proto == "udp" {
					u[udpFlow{p.HostPort, p.ContainerIP, p.ContainerPort}] = true
				}
			}
		}
		if len(u) > n {
			fams = append(fams, [nTables]netlink.InetFamily{tableIP: unix.AF_INET, tableIP6: unix.AF_INET6}[t])
		}
	}
	if len(u) == 0 {
		return nil
	}
	ns := netns.None()
	if f.ns >= 0 {
		ns = netns.NsHandle(f.ns)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("ports removed, but opening conntrack to forget their UDP flows failed: %w", err)
	}
	defer h.Close()
	for _, fam := range fams {
		if _, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, u); err != nil {
			return fmt.Errorf("ports removed, but forgetting their UDP flows in conntrack failed: %w", err)
		}
	}
	return nil
}

// inNS runs fn in the firewall's namespace: on a locked thread of its own that enters the
// namespace and returns before it is unlocked (or is never unlocked, if returning fails, so
// that the runtime discards it). /proc/sys/net and new netlink sockets belong to the
// namespace of the thread that opens them.
func (f *Firewall) inNS(fn func() error) error {
	if f.ns < 0 {
		return fn()
	}
	return sandbox.Enter(f.ns, fn)
}
