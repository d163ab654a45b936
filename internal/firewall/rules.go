package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of cnet's two tables, one of family ip and one of family ip6.
const TableName = "cnet"

// version tags every rule's comment: a daemon that finds rules of another version (or a rule
// someone deleted) rebuilds that chain; sets of another layout make it rebuild the table.
const version = "cnet/1"

// Names of the sets and maps (see the package documentation).
const (
	setBridges    = "bridges"
	setSameBridge = "same_bridge"
	setNoICC      = "no_icc"
	setInternal   = "internal"
	setSubnets    = "subnets"
	setMasquerade = "masquerade"
	mapPortsAny   = "ports_any"
	mapPortsIP    = "ports_ip"
)

// family is what differs between cnet's IPv4 and IPv6 tables: the address type and size, where
// the addresses sit in the network header, and so which registers a concatenation uses.
type family struct {
	name    string // nft's name of the family, "ip" or "ip6"
	nft     nftables.TableFamily
	nfproto uint32               // NFPROTO_IPV4 or NFPROTO_IPV6, for the NAT expression
	addr    nftables.SetDatatype // ipv4_addr or ipv6_addr
	saddr   uint32               // offset of the source address in the network header
	daddr   uint32               // offset of the destination address
	// afterAddr is the 4-byte register where a concatenation continues after an address in
	// register 1: an IPv4 address fills only its first word (NFT_REG32_00), an IPv6 address
	// all four (NFT_REG32_00 to 03), so the next part goes to NFT_REG32_01 or NFT_REG32_04.
	afterAddr uint32
}

// The two families, in the order of Firewall.layouts and of a batch's tables.
var families = [nTables]*family{
	tableIP: {name: "ip", nft: nftables.TableFamilyIPv4, nfproto: unix.NFPROTO_IPV4,
		addr: nftables.TypeIPAddr, saddr: 12, daddr: 16, afterAddr: unix.NFT_REG32_01},
	tableIP6: {name: "ip6", nft: nftables.TableFamilyIPv6, nfproto: unix.NFPROTO_IPV6,
		addr: nftables.TypeIP6Addr, saddr: 8, daddr: 24, afterAddr: unix.NFT_REG32_04},
}

// Indexes of the two tables in Firewall.layouts and in a batch.
const (
	tableIP  = iota // table ip cnet
	tableIP6        // table ip6 cnet
	nTables
)

// addrLen is the length of the family's addresses in bytes.
func (fam *family) addrLen() uint32 { return fam.addr.Bytes }

// layout is one of cnet's tables: its sets and chains and the rules of each chain. It is built
// per Firewall because the nftables objects carry a table pointer and IDs used within a batch.
type layout struct {
	fam    *family
	table  *nftables.Table
	sets   []*nftables.Set
	byName map[string]*nftables.Set
	chains []*nftables.Chain
	rules  map[string][]rule // by chain name, in order
}

type rule struct {
	tag   string // comment, unique in the chain
	exprs []expr.Any
}

// String names the table as nft does, for messages.
func (l *layout) String() string { return "table " + l.fam.name + " " + TableName }

// newLayout returns the layout of cnet's table of family fam. Both tables have the same sets
// (with the family's address type) and the same rules, but for two IPv4-only pieces: the guard
// chain and the masquerade of 127.0.0.0/8 (see the package documentation).
func newLayout(fam *family) *layout {
	t := &nftables.Table{Name: TableName, Family: fam.nft}
	l := &layout{fam: fam, table: t, byName: map[string]*nftables.Set{}, rules: map[string][]rule{}}
	// Fixed IDs: they only name the sets within one batch, and fixing them keeps AddSet away
	// from the library's global ID counter (which is not safe for concurrent use). A batch may
	// hold both tables' sets: the kernel looks an ID up within the set's own table.
	add := func(s *nftables.Set) {
		s.Table = t
		s.ID = uint32(len(l.sets) + 1)
		l.sets = append(l.sets, s)
		l.byName[s.Name] = s
	}
	var (
		ifPair  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)
		anyKey  = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
		ipKey   = nftables.MustConcatSetType(fam.addr, nftables.TypeInetProto, nftables.TypeInetService)
		dnatVal = nftables.MustConcatSetType(fam.addr, nftables.TypeInetService)
		// Interface names are strings, which nft keeps in host byte order: saying so makes
		// `nft list` print them.
		host = binaryutil.NativeEndian
		big  = binaryutil.BigEndian
	)
	add(&nftables.Set{Name: setBridges, KeyType: nftables.TypeIFName, KeyByteOrder: host})
	add(&nftables.Set{Name: setSameBridge, KeyType: ifPair, Concatenation: true, KeyByteOrder: host})
	add(&nftables.Set{Name: setNoICC, KeyType: ifPair, Concatenation: true, KeyByteOrder: host})
	add(&nftables.Set{Name: setInternal, KeyType: nftables.TypeIFName, KeyByteOrder: host})
	add(&nftables.Set{Name: setSubnets, KeyType: fam.addr, Interval: true, KeyByteOrder: big})
	add(&nftables.Set{Name: setMasquerade, KeyType: fam.addr, Interval: true, KeyByteOrder: big})
	add(&nftables.Set{Name: mapPortsAny, KeyType: anyKey, IsMap: true, DataType: dnatVal, Concatenation: true, KeyByteOrder: big})
	add(&nftables.Set{Name: mapPortsIP, KeyType: ipKey, IsMap: true, DataType: dnatVal, Concatenation: true, KeyByteOrder: big})

	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) {
		l.chains = append(l.chains, &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio})
	}
	// The guard is IPv4 only: IPv6 needs none, since the kernel drops a packet for ::1 that
	// arrives on any interface but lo before the prerouting hook (ip6_rcv_core, RFC 4291
	// 2.5.3), and IPv6 has no route_localnet to open the host's loopback to its bridges.
	if fam == families[tableIP] {
		chain("guard", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	}
	chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	chain("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)

	s := l.byName
	if l.chain("guard") != nil {
		l.rules["guard"] = []rule{
			{"loopback only from lo", cat(ifnameIs(expr.MetaKeyIIFNAME, "lo", false), loopbackAddr(fam.daddr), verdict(expr.VerdictDrop))},
		}
	}
	dnat := []rule{
		{"publish on one address", cat(local(), dnatIP(fam, s[mapPortsIP]))},
		{"publish on all addresses", cat(local(), dnatAny(fam, s[mapPortsAny]))},
	}
	l.rules["prerouting"] = dnat
	l.rules["output"] = dnat
	if fam == families[tableIP6] {
		// The host's own connections to [::1] are never DNATed: the kernel would drop them
		// (nothing from ::1 is routed out of lo), and the client would wait out its connect
		// timeout instead of being refused at once and trying its next address. TCP ones are
		// translated at connect() instead, and a port on [::1] has the userland proxy.
		notLo := notIPv6Loopback(fam.daddr)
		l.rules["output"] = []rule{
			{"publish on one address, not ::1", cat(notLo, local(), dnatIP(fam, s[mapPortsIP]))},
			{"publish on all addresses, not ::1", cat(notLo, local(), dnatAny(fam, s[mapPortsAny]))},
		}
	}
	masq := []expr.Any{&expr.Masq{}}
	var post []rule
	if fam == families[tableIP] {
		post = append(post, rule{"localhost to a container", cat(loopbackAddr(fam.saddr), in(expr.MetaKeyOIFNAME, s[setBridges], false), masq)})
	}
	l.rules["postrouting"] = append(post,
		rule{"hairpin", cat(ctDNAT(), in(expr.MetaKeyOIFNAME, s[setBridges], false), saddrIn(fam, s[setSubnets]), masq)},
		rule{"masquerade", cat(in(expr.MetaKeyOIFNAME, s[setBridges], true), saddrIn(fam, s[setMasquerade]), masq)},
	)
	// Forwarding is decided by interfaces and conntrack only, so both families have the same.
	l.rules["forward"] = []rule{
		{"hairpin", cat(ctDNAT(), pairIn(s[setSameBridge]), verdict(expr.VerdictAccept))},
		{"icc disabled", cat(pairIn(s[setNoICC]), verdict(expr.VerdictDrop))},
		{"same bridge", cat(pairIn(s[setSameBridge]), verdict(expr.VerdictAccept))},
		{"internal out", cat(in(expr.MetaKeyIIFNAME, s[setInternal], false), verdict(expr.VerdictDrop))},
		{"internal in", cat(in(expr.MetaKeyOIFNAME, s[setInternal], false), verdict(expr.VerdictDrop))},
		{"replies", cat(ctStateReply(), verdict(expr.VerdictAccept))},
		{"published", cat(ctDNAT(), verdict(expr.VerdictAccept))},
		{"isolation", cat(in(expr.MetaKeyOIFNAME, s[setBridges], false), verdict(expr.VerdictDrop))},
	}
	return l
}

func (l *layout) chain(name string) *nftables.Chain {
	for _, c := range l.chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// addRules queues chain c's rules.
func (l *layout) addRules(cc *nftables.Conn, c *nftables.Chain) {
	for _, r := range l.rules[c.Name] {
		cc.AddRule(&nftables.Rule{Table: l.table, Chain: c, Exprs: r.exprs, UserData: ruleTag(r.tag)})
	}
}

func ruleTag(tag string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, version+": "+tag)
}

func ruleTagOf(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}
