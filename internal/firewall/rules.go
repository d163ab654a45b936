package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is the name of cnet's table (family ip).
const TableName = "cnet"

// version tags every rule's comment: a daemon that finds rules of another version (or a rule
// someone deleted) rebuilds that chain; sets of another layout make it rebuild the table.
const version = "cnet/1"

// Register numbers as the kernel reads them: 1 and 2 are the 16-byte registers, 9 and 10 the
// second and third 4-byte words of register 1, where concatenated keys continue.
const (
	reg1   = unix.NFT_REG_1
	reg2   = unix.NFT_REG_2
	reg1w1 = unix.NFT_REG32_01
	reg1w2 = unix.NFT_REG32_02
)

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

var (
	typeIfPair  = nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)
	typeAnyKey  = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	typeIPKey   = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typeDNATVal = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
)

// layout is cnet's table: its sets and chains and the rules of each chain. It is built per
// Firewall because the nftables objects carry a table pointer and IDs used within a batch.
type layout struct {
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

func newLayout() *layout {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	l := &layout{table: t, byName: map[string]*nftables.Set{}, rules: map[string][]rule{}}
	// Fixed IDs: they only name the sets within one batch, and fixing them keeps AddSet away
	// from the library's global ID counter (which is not safe for concurrent use).
	add := func(s *nftables.Set) {
		s.Table = t
		s.ID = uint32(len(l.sets) + 1)
		l.sets = append(l.sets, s)
		l.byName[s.Name] = s
	}
	// Interface names are strings, which nft keeps in host byte order: saying so makes
	// `nft list` print them.
	host := binaryutil.NativeEndian
	add(&nftables.Set{Name: setBridges, KeyType: nftables.TypeIFName, KeyByteOrder: host})
	add(&nftables.Set{Name: setSameBridge, KeyType: typeIfPair, Concatenation: true, KeyByteOrder: host})
	add(&nftables.Set{Name: setNoICC, KeyType: typeIfPair, Concatenation: true, KeyByteOrder: host})
	add(&nftables.Set{Name: setInternal, KeyType: nftables.TypeIFName, KeyByteOrder: host})
	add(&nftables.Set{Name: setSubnets, KeyType: nftables.TypeIPAddr, Interval: true, KeyByteOrder: binaryutil.BigEndian})
	add(&nftables.Set{Name: setMasquerade, KeyType: nftables.TypeIPAddr, Interval: true, KeyByteOrder: binaryutil.BigEndian})
	add(&nftables.Set{Name: mapPortsAny, KeyType: typeAnyKey, IsMap: true, DataType: typeDNATVal, Concatenation: true, KeyByteOrder: binaryutil.BigEndian})
	add(&nftables.Set{Name: mapPortsIP, KeyType: typeIPKey, IsMap: true, DataType: typeDNATVal, Concatenation: true, KeyByteOrder: binaryutil.BigEndian})

	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) {
		l.chains = append(l.chains, &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio})
	}
	chain("guard", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	chain("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)

	s := l.byName
	l.rules["guard"] = []rule{
		{"loopback only from lo", cat(ifnameIs(expr.MetaKeyIIFNAME, "lo", false), loopbackAddr(16), verdict(expr.VerdictDrop))},
	}
	dnat := []rule{
		{"publish on one address", cat(local(), dnatIP(s[mapPortsIP]))},
		{"publish on all addresses", cat(local(), dnatAny(s[mapPortsAny]))},
	}
	l.rules["prerouting"] = dnat
	l.rules["output"] = dnat
	masq := []expr.Any{&expr.Masq{}}
	l.rules["postrouting"] = []rule{
		{"localhost to a container", cat(loopbackAddr(12), in(expr.MetaKeyOIFNAME, s[setBridges], false), masq)},
		{"hairpin", cat(ctDNAT(), in(expr.MetaKeyOIFNAME, s[setBridges], false), saddrIn(s[setSubnets]), masq)},
		{"masquerade", cat(in(expr.MetaKeyOIFNAME, s[setBridges], true), saddrIn(s[setMasquerade]), masq)},
	}
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

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// ifname pads an interface name to IFNAMSIZ, as the kernel compares and stores it.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func ifnameIs(key expr.MetaKey, name string, eq bool) []expr.Any {
	op := expr.CmpOpNeq
	if eq {
		op = expr.CmpOpEq
	}
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: op, Register: reg1, Data: ifname(name)},
	}
}

// loopbackAddr matches an address in 127.0.0.0/8: the first byte of the source (offset 12)
// or destination (offset 16) address is 127.
func loopbackAddr(offset uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{127}},
	}
}

// local matches packets for one of the host's own addresses.
func local() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// dnatIP: ip daddr . meta l4proto . th dport looked up in m gives the address and port.
func dnatIP(m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1w1},
		&expr.Payload{DestRegister: reg1w2, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		dnatExpr(),
	}
}

// dnatAny: meta l4proto . th dport looked up in m gives the address and port.
func dnatAny(m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Payload{DestRegister: reg1w1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		dnatExpr(),
	}
}

// dnatExpr takes the address from the first word of register 1 and the port from the second,
// where the map's concatenated value lands.
func dnatExpr() expr.Any {
	return &expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
		RegAddrMin: reg1, RegAddrMax: reg1, RegProtoMin: reg1w1, RegProtoMax: reg1w1, Specified: true}
}

func in(key expr.MetaKey, s *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID, Invert: invert},
	}
}

func pairIn(s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg2},
		&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID},
	}
}

func saddrIn(s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID},
	}
}

func ctBits(key expr.CtKey, mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

// ctDNAT matches connections whose destination was NATed (IPS_DST_NAT).
func ctDNAT() []expr.Any { return ctBits(expr.CtKeySTATUS, ipsDstNAT) }

// ipsDstNAT is IPS_DST_NAT of linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5

func ctStateReply() []expr.Any {
	return ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
}
