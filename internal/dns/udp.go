package dns

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP side of a listener reads and answers queries in batches: one recvmmsg takes every
// datagram waiting (up to batchSize), the resolver answers each in place, one sendmmsg sends
// the answers. Under load that divides the system calls per query by the batch size. The batch
// buffers come from a pool shared by every listener and are taken only once the socket is
// readable: an idle sandbox's resolver holds no buffer at all, only its blocked goroutine.
//
// What is left per answer is the kernel's path for one datagram: route lookup, the nftables
// hooks (the 127.0.0.11:53 redirect is NAT: conntrack on every packet), loopback, delivery.
// Answers to one client socket that are the same size (a load of queries for names alike) go
// as one UDP GSO message (UDP_SEGMENT): that path is walked once for all of them, and the
// kernel splits them into datagrams only as it queues them on the client's socket. A kernel
// that refuses GSO gets each datagram on its own from then on.

const batchSize = 32

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2); Go pads it to its alignment as C
// does (64 bytes on 64-bit systems, 32 on 32-bit ones).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// gsoCmsgLen is the room of one UDP_SEGMENT control message (a uint16 segment size).
const gsoCmsgLen = 24

type batch struct {
	in     [batchSize]mmsghdr
	inIov  [batchSize]unix.Iovec
	names  [batchSize]unix.RawSockaddrInet4 // clients: the listener is IPv4 (127.0.0.11)
	out    [batchSize]mmsghdr
	outIov [batchSize]unix.Iovec
	ctrl   [batchSize][gsoCmsgLen]byte
	bufs   [batchSize][udpReadBuf]byte

	// The answers of a batch before they are grouped into messages.
	resp  [batchSize][]byte
	from  [batchSize]uint8 // the answer's client: index into names
	msgOf [batchSize]uint8 // the out message an answer goes in
	first [batchSize]uint8 // an out message's first answer
	count [batchSize]uint8 // answers per out message
}

// gsoOff is set when the kernel refused a GSO message (before Linux 4.18, or a device
// without checksum offload): answers then go one datagram each.
var gsoOff atomic.Bool

var batches = sync.Pool{New: func() any {
	b := new(batch)
	for i := range b.in {
		b.inIov[i].Base = &b.bufs[i][0]
		b.inIov[i].SetLen(udpReadBuf)
		b.in[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.in[i].hdr.Iov = &b.inIov[i]
		b.in[i].hdr.Iovlen = 1
	}
	return b
}}

// recv reads up to batchSize datagrams without blocking.
func (b *batch) recv(fd uintptr) (int, unix.Errno) {
	for i := range b.in {
		b.in[i].hdr.Namelen = unix.SizeofSockaddrInet4
		b.in[i].hdr.Flags = 0
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])),
			batchSize, unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(n), errno
		}
	}
}

// send sends the first n prepared messages, dropping what the socket refuses (UDP may lose
// datagrams; the client asks again).
func (b *batch) send(fd uintptr, n int) {
	for sent := 0; sent < n; {
		k, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[sent])),
			uintptr(n-sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
		case errno != 0:
			if b.out[sent].hdr.Controllen != 0 && (errno == unix.EIO || errno == unix.EINVAL || errno == unix.ENOPROTOOPT) {
				gsoOff.Store(true)
				b.sendEach(fd, sent)
			}
			sent++ // skip the message that failed (e.g. the client's socket is gone)
		default:
			sent += int(k)
		}
	}
	for i := range b.outIov {
		b.outIov[i].Base = nil // do not keep answers that outgrew their buffer alive in the pool
	}
}

// sendEach sends the datagrams of GSO message m one at a time.
func (b *batch) sendEach(fd uintptr, m int) {
	h := b.out[m].hdr
	iov := unsafe.Slice(h.Iov, h.Iovlen)
	h.Control, h.Controllen, h.Iovlen = nil, 0, 1
	for i := range iov {
		h.Iov = &iov[i]
		_, _, _ = unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&h)), unix.MSG_DONTWAIT)
	}
}

func (b *batch) client(i int) netip.AddrPort {
	sa := &b.names[i]
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order whatever the host's
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
}

// serveUDP is the listener's UDP loop; it returns when the socket is closed.
func (l *Listener) serveUDP() {
	defer l.wg.Done()
	rc, err := l.udp.SyscallConn()
	if err != nil {
		return
	}
	for {
		var failed bool
		err := rc.Read(func(fd uintptr) bool {
			b := batches.Get().(*batch)
			defer batches.Put(b)
			n, errno := b.recv(fd)
			switch {
			case errno == unix.EAGAIN:
				return false // nothing left: wait for the socket to be readable again
			case errno != 0:
				failed = true // e.g. ENOMEM; the socket stays usable
				return true
			}
			l.answerBatch(fd, b, n)
			return true
		})
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.udp.Close() // unexpected: the runtime gave up on the socket
			}
			return
		}
		if failed {
			sleepBriefly()
		}
	}
}

func (l *Listener) answerBatch(fd uintptr, b *batch, n int) {
	k := 0
	for i := range n {
		msg := b.bufs[i][:b.in[i].len]
		var resp []byte
		var act action
		if b.in[i].hdr.Flags&unix.MSG_TRUNC != 0 {
			resp, act = failure(msg, rcodeFormErr, false), actReply
		} else {
			resp, act = l.r.respond(msg, false)
		}
		switch act {
		case actReply:
			if len(resp) != 0 {
				b.resp[k], b.from[k] = resp, uint8(i)
				k++
			}
		case actForward:
			l.forwardUDP(msg, b.client(i))
		}
	}
	if k > 0 {
		b.send(fd, b.group(k))
	}
}

// group lays the first k answers out as messages in b.out: those to one client of one size
// together (a GSO message), the others alone. It returns the number of messages.
func (b *batch) group(k int) int {
	gso := !gsoOff.Load()
	msgs := 0
	for a := range k {
		m := msgs
		if gso {
			for j := range msgs {
				f := b.first[j]
				if len(b.resp[f]) == len(b.resp[a]) && b.names[b.from[f]] == b.names[b.from[a]] {
					m = j
					break
				}
			}
		}
		if m == msgs {
			b.count[m], b.first[m] = 0, uint8(a)
			msgs++
		}
		b.msgOf[a] = uint8(m)
		b.count[m]++
	}
	// Each message's iovecs are contiguous: message m starts after the answers of 0..m-1.
	var start [batchSize + 1]int
	for m := range msgs {
		start[m+1] = start[m] + int(b.count[m])
	}
	fill := start
	for a := range k {
		m := b.msgOf[a]
		v := &b.outIov[fill[m]]
		fill[m]++
		v.Base = &b.resp[a][0]
		v.SetLen(len(b.resp[a]))
		if fill[m]-1 == start[m] {
			b.out[m].hdr = unix.Msghdr{
				Name:    (*byte)(unsafe.Pointer(&b.names[b.from[a]])),
				Namelen: unix.SizeofSockaddrInet4,
				Iov:     v,
			}
		}
	}
	for m := range msgs {
		h := &b.out[m].hdr
		h.SetIovlen(int(b.count[m]))
		if b.count[m] > 1 {
			c := &b.ctrl[m]
			cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
			cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			cm.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(b.outIov[start[m]].Len)
			h.Control = &c[0]
			h.SetControllen(unix.CmsgSpace(2))
		}
	}
	for i := range k {
		b.resp[i] = nil
	}
	return msgs
}

// forwardUDP hands a query to a goroutine of its own, within the forwarder's bound; beyond it
// the client is refused at once.
func (l *Listener) forwardUDP(msg []byte, client netip.AddrPort) {
	if !l.r.fwd.acquire() {
		if resp := failure(msg, rcodeRefused, false); resp != nil {
			_, _ = l.udp.WriteToUDPAddrPort(resp, client)
		}
		return
	}
	q := append([]byte(nil), msg...)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer l.r.fwd.release()
		if resp := l.r.forward(l.ctx, q, false); resp != nil {
			_, _ = l.udp.WriteToUDPAddrPort(resp, client)
		}
	}()
}
