// Package firewall programs cnet's packet filtering and NAT: published ports, masquerade,
// isolation between networks, internal networks and enable_icc=false. It talks to the kernel
// through github.com/google/nftables (netlink, no nft or iptables processes) and every change is
// one netlink transaction, so the ruleset is never seen half-updated.
//
// # Only cnet's own tables
//
// Everything lives in two tables, `table ip cnet` for IPv4 and `table ip6 cnet` for IPv6, of
// the same design. The package never lists, flushes or edits another table (Docker's,
// firewalld's, the user's): it reads only its own tables and replaces one whole only when its
// layout is not the one this version expects; each table is checked on its own, so a host
// that has only the ip table (made by a cnet without IPv6) gets the ip6 table without the ip
// table's elements being touched. A change that concerns both tables (a network, a Sync) is
// still one transaction: nftables transactions span tables. nftables evaluates every table's
// base chains, so an accept here does not override a drop elsewhere: a host whose other
// firewall drops forwarded traffic (Docker's FORWARD policy DROP, for one) must allow cnet's
// bridges there.
//
// Two tables rather than one of family inet: the address sets and maps are per family anyway
// (a set's key has one address type), and keeping `table ip cnet` exactly as cnet versions
// without IPv6 made it lets them and this one share a host's state. A kernel booted without
// IPv6 (no /proc/sys/net/ipv6) gets the ip table alone.
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
//	  set subnets     { type ipv4_addr; flags interval } # every network's IPv4 subnets
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
//	table ip6 cnet {
//	  (bridges, same_bridge, no_icc, internal: as in ip, with the same elements)
//	  set subnets     { type ipv6_addr; flags interval } # every network's IPv6 subnets
//	  set masquerade  { type ipv6_addr; flags interval } # those with enable_ip_masquerade
//	  map ports_any   { type inet_proto . inet_service : ipv6_addr . inet_service }
//	  map ports_ip    { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service }
//
//	  chain prerouting { type nat hook prerouting priority dstnat
//	    fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports_ip
//	    fib daddr type local dnat ip6 to meta l4proto . th dport map @ports_any }
//	  chain output { type nat hook output priority dstnat;  (the same two rules) }
//	  chain postrouting { type nat hook postrouting priority srcnat
//	    ct status dnat oifname @bridges ip6 saddr @subnets masquerade
//	    oifname != @bridges ip6 saddr @masquerade masquerade }
//	  chain forward { (the same eight rules as in ip) }
//	}
//
// Why each piece:
//
//   - Published ports are DNAT through the two maps, keyed by protocol and port (and the host
//     address for `-p IP:…`), giving the container's address and port. `fib daddr type local`
//     limits them to traffic for the host's own addresses, so traffic the host routes elsewhere
//     is never captured. The prerouting chain serves other hosts and containers (including
//     hairpin through the host's address); the output chain serves processes on the host,
//     including 127.0.0.1 (but not ::1, see below). While the daemon runs, the host's TCP connections are normally
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
//   - enable_icc=false drops IPv4 and IPv6 between ports of one bridge. Frames bridged between
//     ports normally bypass the ip and ip6 hooks, and `meta ibrname` of the bridge family
//     needs the nft_meta_bridge module, which kernels may lack; so AddNetwork turns on the
//     bridge's own nf_call_iptables and nf_call_ip6tables (br_netfilter for that bridge
//     only), which send its bridged IPv4 and IPv6 through the forward chains with iifname and
//     oifname both the bridge. ARP is not IPv4 and still passes, as with Docker; IPv6
//     neighbour discovery is ICMPv6 and is dropped with the rest, as with Docker's ip6tables
//     rules (containers still reach the gateway, which is not bridged traffic).
//
// What is particular to IPv6:
//
//   - A network's bridge is in the interface sets of both tables whatever its subnets, so
//     isolation, --internal and enable_icc=false hold for both families on every network;
//     its subnets go to the table of their family. A dual-stack network is in both subnets
//     sets; an IPv6-only one only in ip6's.
//   - A published port goes to the table of the container address's family. Docker's
//     `-p 8080:80` (no host address, or 0.0.0.0, which is what host_binding_ipv4 gives by
//     default) is on all the host's addresses of both families, so the daemon publishes it to
//     each of the container's addresses; `-p [::]:8080:80` is on IPv6 only, and a given host
//     address only reaches a container address of its family (see Applies).
//   - Registers: an IPv6 address fills all of register 1 (its four 32-bit words), so in
//     ports_ip's key the protocol and port follow in NFT_REG32_04 and 05, and in both maps'
//     values the port lands in NFT_REG32_04, where the NAT expression takes it (NFT_REG32_01
//     for IPv4). The addresses sit at offsets 8 (source) and 24 (destination) of the header.
//   - There is no guard chain: the kernel itself drops a packet for ::1 that arrives on any
//     interface but lo, before the prerouting hook (RFC 4291 2.5.3), and IPv6 has no
//     route_localnet to open the host's loopback to the bridges, so moby#41872 has no IPv6
//     counterpart. For the same reason the host's own IPv6 loopback connections are not
//     served by NAT: a connection to [::1]:PORT is DNATed by the output chain, but a packet
//     from ::1 may not leave the node (RFC 4291 2.5.3) and the kernel drops it. Masquerading
//     it to the gateway (`ip6 saddr ::1 oifname @bridges masquerade`) was tried: the
//     container then answers, but the answer, translated back to ::1 in prerouting before
//     routing, arrives on the bridge and the kernel finds no route for it (::1 is routed only
//     through lo; Ip6InNoRoutes counts it). So there is no such rule; the host reaches
//     published ports over IPv6 through one of its other addresses (and over 127.0.0.1).
//   - Forwarding is by interface and conntrack only, so the forward chains are the same.
//
// # Lifecycle
//
// The daemon calls Sync at start (it creates what is missing and removes what a crash left
// behind), AddNetwork/RemoveNetwork with each network, AddPorts/RemovePorts with each
// container's published ports (once per container address, IPv4 and IPv6, with all the
// mappings: each call takes those that Apply), and nothing at shutdown: the rules stay so that
// containers keep working while the daemon is down. Delete removes the tables for good.
//
// Unpublishing a UDP port also deletes the conntrack entries (IPv4 or IPv6) of flows DNATed to
// it: UDP flows never end, and a client that keeps sending from one socket would otherwise
// keep reaching the old container even after the port is published to another one.
package firewall
