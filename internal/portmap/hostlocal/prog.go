package hostlocal

import (
	"github.com/cilium/ebpf/asm"
)

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h), the context of both programs.
// Addresses and ports are in network byte order; a port is a 32-bit field whose low 16 bits
// (in memory order) hold it.
const (
	offUserIP4   = 4
	offUserPort  = 24
	offProtocol  = 36
	ipprotoTCP   = 6
	loopbackByte = 127 // first octet of 127.0.0.0/8, the low byte of user_ip4 as loaded
)

// Stack slots of the connect program, below the frame pointer.
const (
	stackKey    = -8  // a services key: ip4, port
	stackCookie = -16 // a peers key: the socket cookie
	stackPeer   = -32 // a peers value: original ip4, port, translated ip4, port
)

// connectProg rewrites the destination of a TCP connect() made in the namespace whose cookie is
// netns to the container address the services map gives for it: first the exact address and
// port, then, for 127.0.0.0/8, the wildcard entry (address 0) of ports published on all
// addresses. It records the original destination in peers under the socket's cookie, for
// getpeername. It always returns 1: the connect goes on, translated or not.
func connectProg(netns uint64) asm.Instructions {
	return append(tcpInNetns(netns),
		asm.LoadMem(asm.R2, asm.R6, offUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, stackKey, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, offUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackKey+4, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(servicesMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackKey),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "found"),

		asm.LoadMem(asm.R2, asm.RFP, stackKey, asm.Word),
		asm.And.Imm(asm.R2, 0xff),
		asm.JNE.Imm(asm.R2, loopbackByte, "allow"),
		asm.StoreImm(asm.RFP, stackKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(servicesMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "allow"),

		asm.Mov.Reg(asm.R7, asm.R0).WithSymbol("found"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, stackCookie, asm.R0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R6, offUserIP4, asm.Word),
		asm.StoreMem(asm.RFP, stackPeer, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R6, offUserPort, asm.Word),
		asm.StoreMem(asm.RFP, stackPeer+4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word),
		asm.StoreMem(asm.RFP, stackPeer+8, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 4, asm.Word),
		asm.StoreMem(asm.RFP, stackPeer+12, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(peersMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackCookie),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, stackPeer),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY
		asm.FnMapUpdateElem.Call(),

		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word),
		asm.StoreMem(asm.R6, offUserIP4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 4, asm.Word),
		asm.StoreMem(asm.R6, offUserPort, asm.R2, asm.Word),

		asm.Mov.Imm(asm.R0, 1).WithSymbol("allow"),
		asm.Return(),
	)
}

// tcpInNetns is how both connect programs start: the context in R6, and a jump to "allow"
// (untouched) unless the socket is TCP and in the daemon's namespace netns — the programs are
// attached to a cgroup, which spans every namespace.
func tcpInNetns(netns uint64) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, offProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, ipprotoTCP, "allow"),
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(netns), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "allow"),
	}
}

// getpeernameProg gives a translated socket its original peer back: the address the process
// connected to, not the container's. It acts only while the socket's peer is still the
// translated one (a socket may connect again elsewhere after a failed connect).
func getpeernameProg() asm.Instructions {
	return append(peerLookup(peersMap),
		asm.LoadMem(asm.R2, asm.R6, offUserIP4, asm.Word),
		asm.LoadMem(asm.R3, asm.R0, 8, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R3, "out"),
		asm.LoadMem(asm.R2, asm.R6, offUserPort, asm.Word),
		asm.LoadMem(asm.R3, asm.R0, 12, asm.Word),
		asm.JNE.Reg(asm.R2, asm.R3, "out"),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, offUserIP4, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 4, asm.Word),
		asm.StoreMem(asm.R6, offUserPort, asm.R2, asm.Word),

		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	)
}

// peerLookup is how both getpeername programs start: the context in R6, and in R0 the peers
// entry of the socket (by its cookie), or a jump to "out" when it has none.
func peerLookup(peers string) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSocketCookie.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(peers),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
	}
}
