package dns

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP side of a listener reads and answers queries in batches: one recvmmsg takes every
// datagram waiting (up to batchSize), the resolver answers each in place, one sendmmsg sends
// the answers. Under load that divides the system calls per query by the batch size, which is
// most of what a query costs the daemon (answering one takes ~100 ns). The batch buffers come
// from a pool shared by every listener and are taken only once the socket is readable: an idle
// sandbox's resolver holds no buffer at all, only its blocked goroutine.

const batchSize = 32

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2); Go pads it to its alignment as C
// does (64 bytes on 64-bit systems, 32 on 32-bit ones).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

type batch struct {
	in     [batchSize]mmsghdr
	inIov  [batchSize]unix.Iovec
	names  [batchSize]unix.RawSockaddrInet4 // clients: the listener is IPv4 (127.0.0.11)
	out    [batchSize]mmsghdr
	outIov [batchSize]unix.Iovec
	bufs   [batchSize][udpReadBuf]byte
}

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

// send sends the first n prepared answers, dropping what the socket refuses (UDP may lose
// datagrams; the client asks again).
func (b *batch) send(fd uintptr, n int) {
	for sent := 0; sent < n; {
		k, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[sent])),
			uintptr(n-sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
		case errno != 0:
			sent++ // skip the datagram that failed (e.g. the client's socket is gone)
		default:
			sent += int(k)
		}
	}
	for i := range n {
		b.outIov[i].Base = nil // do not keep answers that outgrew their buffer alive in the pool
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
			if len(resp) == 0 {
				continue
			}
			b.outIov[k].Base = &resp[0]
			b.outIov[k].SetLen(len(resp))
			b.out[k].hdr = unix.Msghdr{
				Name:    (*byte)(unsafe.Pointer(&b.names[i])),
				Namelen: unix.SizeofSockaddrInet4,
				Iov:     &b.outIov[k],
				Iovlen:  1,
			}
			k++
		case actForward:
			l.forwardUDP(msg, b.client(i))
		}
	}
	if k > 0 {
		b.send(fd, k)
	}
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
