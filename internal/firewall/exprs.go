package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Register numbers as the kernel reads them: 1 and 2 are the 16-byte registers. A concatenated
// key or value continues in the 4-byte words after its first part (NFT_REG32_00 is the first
// word of register 1); family.afterAddr says where, after an address.
const (
	reg1   = unix.NFT_REG_1
	reg2   = unix.NFT_REG_2
	reg1w1 = unix.NFT_REG32_01 // second word of register 1
)

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

// loopbackAddr matches an IPv4 address in 127.0.0.0/8: the first byte of the source (offset
// 12) or destination (offset 16) address is 127.
func loopbackAddr(offset uint32) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{127}},
	}
}

// notIPv6Loopback matches IPv6 packets whose address at offset (the destination's, 24) is
// not ::1.
func notIPv6Loopback(offset uint32) []expr.Any {
	lo := make([]byte, 16)
	lo[15] = 1
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 16},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: lo},
	}
}

// local matches packets for one of the host's own addresses.
func local() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// dnatIP: daddr . meta l4proto . th dport looked up in m gives the address and port. The
// address fills register 1 from its first word; protocol and port follow in the next words.
func dnatIP(fam *family, m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.daddr, Len: fam.addrLen()},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: fam.afterAddr},
		&expr.Payload{DestRegister: fam.afterAddr + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		dnatExpr(fam),
	}
}

// dnatAny: meta l4proto . th dport looked up in m gives the address and port.
func dnatAny(fam *family, m *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Payload{DestRegister: reg1w1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		dnatExpr(fam),
	}
}

// dnatExpr takes the address from register 1 and the port from the word after it, where the
// map's concatenated value (address . port) lands.
func dnatExpr(fam *family) expr.Any {
	return &expr.NAT{Type: expr.NATTypeDestNAT, Family: fam.nfproto,
		RegAddrMin: reg1, RegAddrMax: reg1, RegProtoMin: fam.afterAddr, RegProtoMax: fam.afterAddr, Specified: true}
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

func saddrIn(fam *family, s *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.saddr, Len: fam.addrLen()},
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
