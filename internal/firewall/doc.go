// Package firewall programs cnet's packet filtering and NAT: published ports, masquerade,
// isolation between networks, internal networks and enable_icc=false. It talks to the kernel
// through github.com/google/nftables (netlink, no nft or iptables processes) and every change is
// one netlink transaction, so the ruleset is never seen half-updated.
//
// # Only cnet's own table
//
// Everything lives in one table, `table ip cnet`. The package never lists, flushes or edits
// another table (Docker's, firewalld's, the user's): it reads only its own table and replaces
// it whole only when its layout is not the one this version expects. nftables evaluates every
// table's base chains, so an accept here does not override a drop elsewhere: a host whose
// other firewall drops forwarded traffic (Docker's FORWARD policy DROP, for one) must allow
// cnet's bridges there.
//
// # The rules are fixed; the state is set elements
//
// The rules never change after EnsureBase: every network, every published port is an element of
// a set or map the rules look up, so adding or removing a port is one element whatever the
// number of ports (a hash lookup in the kernel, O(1)), and the rule count stays constant.
//
//	table ip cnet {
//	  set bridges     { type ifname }                  # every cnet bridge
//	  set same_bridge { type ifname . ifname }         # "br . br" for every bridge
//	  set no_icc      { type ifname . ifname }         # "br . br" for enable_icc=false
//	  set internal    { type ifname }                  # --internal bridges
//	  set subnets     { type ipv4_addr; flags interval } # every network's subnets
//	  set masquerade  { type ipv4_addr; flags interval } # subnets with enable_ip_masquerade
//	  map ports_any   { type inet_proto . inet_service : ipv4_addr . inet_service }
//	  map ports_ip    { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//
//	  chain guard { type filter hook prerouting priority raw
//	    iifname != "lo" ip daddr 127.0.0.0/8 drop }
//	  chain prerouting { type nat hook prerouting priority dstnat
//	    fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @ports_ip
//	    fib daddr type local dnat ip to meta l4proto . th dport map @ports_any }
//	  chain output { type nat hook output priority dstnat;  (the same two rules) }
//	  chain postrouting { type nat hook postrouting priority srcnat
//	    ip saddr 127.0.0.0/8 oifname @bridges masquerade
//	    ct status dnat oifname @bridges ip saddr @subnets masquerade
//	    oifname != @bridges ip saddr @masquerade masquerade }
//	  chain forward { type filter hook forward priority filter
//	    ct status dnat iifname . oifname @same_bridge accept
//	    iifname . oifname @no_icc drop
//	    iifname . oifname @same_bridge accept
//	    iifname @internal drop
//	    oifname @internal drop
//	    ct state established,related accept
//	    ct status dnat accept
//	    oifname @bridges drop }
//	}
//
// Why each piece:
//
//   - Published ports are DNAT through the two maps, keyed by protocol and port (and the host
//     address for `-p IP:…`), giving the container's address and port. `fib daddr type local`
//     limits them to traffic for the host's own addresses, so traffic the host routes elsewhere
//     is never captured. The prerouting chain serves other hosts and containers (including
//     hairpin through the host's address); the output chain serves processes on the host,
//     including 127.0.0.1. While the daemon runs, the host's TCP connections are normally
//     translated at connect() before they get here (package portmap/hostlocal): the output
//     chain then serves UDP and SCTP, and everything when the daemon is down or runs with
//     --no-connect-translation.
//   - 127.0.0.1 publishing needs net.ipv4.conf.<bridge>.route_localnet=1 (the kernel otherwise
//     refuses a 127.0.0.1 source on a non-loopback interface; AddNetwork sets it) and the
//     masquerade of 127.0.0.0/8 leaving by a bridge, so the container answers the gateway.
//   - The guard drops packets for 127.0.0.0/8 that arrive on any interface but lo, before
//     conntrack and DNAT. Without it a neighbour could send a packet addressed to 127.0.0.1 to
//     the host and have it DNATed to a port published on 127.0.0.1 only (moby#41872), and
//     route_localnet would let a container reach the host's loopback services.
//   - Masquerade is per subnet, for traffic leaving by any interface that is not a cnet bridge
//     (Docker's `-s SUBNET ! -o BRIDGE -j MASQUERADE`). Hairpin (a container reaching a
//     published port through the host's address, landing on its own bridge) is masqueraded so
//     the answer comes back through the host's conntrack instead of straight across the bridge.
//   - Forwarding: traffic within one bridge is allowed (routed or, with br_netfilter, bridged),
//     internal bridges forward nothing in or out, replies and DNATed (published) connections
//     pass, and anything else routed into a cnet bridge is dropped. That last rule isolates
//     networks from each other in both directions and, like Docker's default "nat" gateway
//     mode, keeps other hosts from reaching unpublished container ports by routing.
//   - enable_icc=false drops IPv4 between ports of one bridge. Frames bridged between ports
//     normally bypass the ip hooks, and `meta ibrname` of the bridge family needs the
//     nft_meta_bridge module, which kernels may lack; so AddNetwork turns on the bridge's own
//     nf_call_iptables (br_netfilter for that bridge only), which sends its bridged IPv4
//     through the forward chain with iifname and oifname both the bridge. ARP is not IPv4 and
//     still passes, as with Docker. IPv6 is not covered: cnet networks are IPv4 only and
//     containers' interfaces have IPv6 disabled.
//
// # Lifecycle
//
// The daemon calls Sync at start (it creates what is missing and removes what a crash left
// behind), AddNetwork/RemoveNetwork with each network, AddPorts/RemovePorts with each
// container's published ports, and nothing at shutdown: the rules stay so that containers keep
// working while the daemon is down. Delete removes the table for good.
//
// Unpublishing a UDP port also deletes the conntrack entries of flows DNATed to it: UDP flows
// never end, and a client that keeps sending from one socket would otherwise keep reaching the
// old container even after the port is published to another one.
package firewall
