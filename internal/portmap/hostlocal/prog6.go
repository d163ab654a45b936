package hostlocal

import (
	"encoding/binary"

	"github.com/cilium/ebpf/asm"
)

// The IPv6 programs read and write user_ip6, a __u32[4] the verifier lets them touch only a
// word at a time (user_ip4 is not theirs at all). Its words are loaded in host byte order, so
// the addresses compared against are built from their bytes in memory order.
const (
	offUserIP6 = 8
	addrSize6  = 16
	entrySize6 = addrSize6 + 4 // address, then user_port's 32 bits (the port in the low 16)
)

var (
	// loopback6Word is the last word of ::1 (the first three are zero).
	loopback6Word = int32(binary.NativeEndian.Uint32([]byte{0, 0, 0, 1}))
	// mapped6Word is the third word of an IPv4-mapped address, ::ffff:a.b.c.d (the first two
	// are zero).
	mapped6Word = int32(binary.NativeEndian.Uint32([]byte{0, 0, 0xff, 0xff}))
)

// Stack slots of the connect6 program, below the frame pointer, each 8-byte aligned.
const (
	stackKey6    = -24                         // a services6 key: ip6, port (20 bytes)
	stackCookie6 = stackKey6 - 8               // a peers6 key: the socket cookie
	stackPeer6   = stackCookie6 - 2*entrySize6 // a peers6 value: original ip6, port, translated ip6, port
)

// copyWords moves n 32-bit words from src+srcOff to dst+dstOff through R2.
func copyWords(dst asm.Register, dstOff int16, src asm.Register, srcOff int16, n int) asm.Instructions {
	var insns asm.Instructions
	for i := range int16(n) {
		insns = append(insns,
			asm.LoadMem(asm.R2, src, srcOff+4*i, asm.Word),
			asm.StoreMem(dst, dstOff+4*i, asm.R2, asm.Word))
	}
	return insns
}

// lookup6 looks up the key at stackKey6 in services6; R0 is the value or 0. Its first
// instruction has the symbol label, if any.
func lookup6(label string) asm.Instructions {
	first := asm.LoadMapPtr(asm.R1, 0).WithReference(services6Map)
	if label != "" {
		first = first.WithSymbol(label)
	}
	return asm.Instructions{
		first,
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackKey6),
		asm.FnMapLookupElem.Call(),
	}
}

// connect6Prog is connectProg for IPv6 sockets: it rewrites the destination of a TCP connect()
// made in the namespace whose cookie is netns to the container address services6 gives for it,
// first for the exact address and port, then, for ::1 alone, the wildcard entry (address ::)
// of ports published on all addresses, and records the original destination in peers6.
//
// An IPv4-mapped destination (::ffff:a.b.c.d, from a dual-stack socket) is left alone: the
// kernel carries that connection as IPv4, where the IPv4 NAT rules serve it (connect4 does not
// run for it: only the hook of the socket's family does), and services6 holds IPv6 containers
// only. encode refuses IPv4-mapped addresses, so no lookup could match one anyway; the check
// states the rule where it applies and spares the lookups.
//
// As for IPv4, a connect() to :: (which Linux takes for the host itself) meets the wildcard
// entry in the exact lookup, and is translated like one to ::1.
func connect6Prog(netns uint64) asm.Instructions {
	insns := tcpInNetns(netns)
	insns = append(insns, copyWords(asm.RFP, stackKey6, asm.R6, offUserIP6, 4)...)
	insns = append(insns, copyWords(asm.RFP, stackKey6+addrSize6, asm.R6, offUserPort, 1)...)
	insns = append(insns,
		// R8 = the first two words ORed: zero for ::1 and for IPv4-mapped addresses.
		asm.LoadMem(asm.R8, asm.RFP, stackKey6, asm.Word),
		asm.LoadMem(asm.R2, asm.RFP, stackKey6+4, asm.Word),
		asm.Or.Reg(asm.R8, asm.R2),
		asm.JNE.Imm(asm.R8, 0, "exact"),
		asm.LoadMem(asm.R2, asm.RFP, stackKey6+8, asm.Word),
		asm.JEq.Imm32(asm.R2, mapped6Word, "allow"),
	)
	insns = append(insns, lookup6("exact")...)
	insns = append(insns,
		asm.JNE.Imm(asm.R0, 0, "found"),

		// Not published on that address: the wildcard entry, for ::1 only.
		asm.JNE.Imm(asm.R8, 0, "allow"),
		asm.LoadMem(asm.R2, asm.RFP, stackKey6+8, asm.Word),
		asm.JNE.Imm(asm.R2, 0, "allow"),
		asm.LoadMem(asm.R2, asm.RFP, stackKey6+12, asm.Word),
		asm.JNE.Imm32(asm.R2, loopback6Word, "allow"),
		// The key of the wildcard: address ::, the port dialled.
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.RFP, stackKey6, asm.R2, asm.DWord),
		asm.StoreMem(asm.RFP, stackKey6+8, asm.R2, asm.DWord),
	)
	insns = append(insns, lookup6("")...)
	insns = append(insns,
		asm.JEq.Imm(asm.R0, 0, "allow"),

		asm.Mov.Reg(asm.R7, asm.R0).WithSymbol("found"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie6, asm.R0, asm.DWord),
	)
	// The original destination from the context (the key may hold the wildcard now), then the
	// translated one from the map.
	insns = append(insns, copyWords(asm.RFP, stackPeer6, asm.R6, offUserIP6, 4)...)
	insns = append(insns, copyWords(asm.RFP, stackPeer6+addrSize6, asm.R6, offUserPort, 1)...)
	insns = append(insns, copyWords(asm.RFP, stackPeer6+entrySize6, asm.R7, 0, 5)...)
	insns = append(insns,
		asm.LoadMapPtr(asm.R1, 0).WithReference(peers6Map),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackCookie6),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stackPeer6),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),
	)
	insns = append(insns, copyWords(asm.R6, offUserIP6, asm.R7, 0, 4)...)
	insns = append(insns, copyWords(asm.R6, offUserPort, asm.R7, addrSize6, 1)...)
	return append(insns,
		asm.Mov.Imm(asm.R0, 1).WithSymbol("allow"),
		asm.Return(),
	)
}

// getpeername6Prog is getpeernameProg for IPv6 sockets: it gives a translated socket its
// original peer back while the socket's peer is still the translated one.
func getpeername6Prog() asm.Instructions {
	insns := peerLookup(peers6Map)
	// The peer's address words and port against the translated ones.
	for i := range int16(5) {
		off := offUserIP6 + 4*i
		if i == 4 {
			off = offUserPort
		}
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R6, off, asm.Word),
			asm.LoadMem(asm.R3, asm.R0, entrySize6+4*i, asm.Word),
			asm.JNE.Reg(asm.R2, asm.R3, "out"))
	}
	insns = append(insns, copyWords(asm.R6, offUserIP6, asm.R0, 0, 4)...)
	insns = append(insns, copyWords(asm.R6, offUserPort, asm.R0, addrSize6, 1)...)
	return append(insns,
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	)
}
