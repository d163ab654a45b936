package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

const (
	// udpReadBuf holds one query: bigger ones (nothing real) are cut by the kernel and get
	// FORMERR. Answers that outgrow it are built in a buffer of their own (see udp.go).
	udpReadBuf = 1232
	// maxTCPConns bounds a sandbox's open TCP connections to its resolver; more are closed
	// at once. TCP is the rare path (truncated answers), so a handful is plenty.
	maxTCPConns = 32
	// tcpFirstRead and tcpIdle bound the wait for a connection's first query and for the next
	// ones (miekg's and RFC 7766's usual values); tcpWrite bounds writing an answer.
	tcpFirstRead = 2 * time.Second
	tcpIdle      = 8 * time.Second
	tcpWrite     = 2 * time.Second
)

// Listener is a resolver serving at 127.0.0.11 inside one sandbox. Its sockets were made in
// the sandbox's namespace; the goroutines serving them are the daemon's: one per socket and
// one per open TCP connection, nothing per UDP query unless it is forwarded, and no buffer
// while idle.
//
// The sockets hold the namespace: Close the listener when the sandbox goes.
type Listener struct {
	r      *Resolver
	nsPath string
	udp    *net.UDPConn
	tcp    *net.TCPListener
	ctx    context.Context // cancelled by Close: aborts forwards in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// Serve starts r on 127.0.0.11 in the network namespace bind-mounted at nsPath: a UDP and a
// TCP socket on random ports, and an nftables table there that redirects 127.0.0.11:53 to
// them. lo must be up in the namespace (127.0.0.11 belongs to its 127.0.0.0/8).
func Serve(nsPath string, r *Resolver) (_ *Listener, err error) {
	l := &Listener{r: r, nsPath: nsPath}
	err = inNamespace(nsPath, func() error {
		var err error
		if l.udp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(resolverIP, 0))); err != nil {
			return fmt.Errorf("listening on UDP 127.0.0.11 (is lo up in the sandbox?): %w", err)
		}
		if l.tcp, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(resolverIP, 0))); err != nil {
			return fmt.Errorf("listening on TCP 127.0.0.11 (is lo up in the sandbox?): %w", err)
		}
		return nil
	})
	defer func() {
		if err != nil {
			l.closeSockets()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("starting the DNS resolver in %s: %w", nsPath, err)
	}
	f, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("starting the DNS resolver: opening namespace %s: %w", nsPath, err)
	}
	defer f.Close()
	udpPort := l.udp.LocalAddr().(*net.UDPAddr).AddrPort().Port()
	tcpPort := l.tcp.Addr().(*net.TCPAddr).AddrPort().Port()
	if err := installRedirect(int(f.Fd()), udpPort, tcpPort); err != nil {
		return nil, fmt.Errorf("starting the DNS resolver in %s: %w", nsPath, err)
	}
	l.start()
	return l, nil
}

// serveSockets serves r on sockets made elsewhere (tests on loopback, without a namespace).
func serveSockets(udp *net.UDPConn, tcp *net.TCPListener, r *Resolver) *Listener {
	l := &Listener{r: r, udp: udp, tcp: tcp}
	l.start()
	return l
}

func (l *Listener) start() {
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(2)
	go l.serveUDP()
	go l.serveTCP()
}

func (l *Listener) closeSockets() {
	if l.udp != nil {
		l.udp.Close()
	}
	if l.tcp != nil {
		l.tcp.Close()
	}
}

// Close stops serving, waits for the goroutines (forwards in flight are cancelled), closes
// the sockets and removes the nftables table if the namespace is still there.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.cancel()
	l.closeSockets()
	l.wg.Wait()
	if l.nsPath == "" {
		return nil
	}
	return removeRedirect(l.nsPath)
}

func (l *Listener) serveTCP() {
	defer l.wg.Done()
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			sleepBriefly() // EMFILE and friends: let them pass
			continue
		}
		if !l.track(c) {
			c.Close()
			continue
		}
		l.wg.Add(1)
		go l.serveConn(c)
	}
}

// track registers a connection so that Close can end it; false when closed or at the bound.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.conns) >= maxTCPConns {
		return false
	}
	if l.conns == nil {
		l.conns = make(map[net.Conn]struct{})
	}
	l.conns[c] = struct{}{}
	return true
}

// serveConn answers the queries of one TCP connection in turn (RFC 7766 framing: a 2-byte
// length before each message) until the client closes it or stays idle.
func (l *Listener) serveConn(c net.Conn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		c.Close()
	}()
	var buf []byte
	timeout := tcpFirstRead
	for {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		var l2 [2]byte
		if _, err := io.ReadFull(c, l2[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(l2[:]))
		if cap(buf) < n {
			buf = make([]byte, n, max(n, 512))
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		resp := l.r.handle(l.ctx, buf[:n], true)
		if resp == nil {
			return // not a query: nothing sensible to say on this connection
		}
		out := make([]byte, 2, 2+len(resp))
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		out = append(out, resp...)
		_ = c.SetWriteDeadline(time.Now().Add(tcpWrite))
		if _, err := c.Write(out); err != nil {
			return
		}
		timeout = tcpIdle
	}
}

// sleepBriefly keeps a loop whose socket reports a persistent error from spinning.
func sleepBriefly() { time.Sleep(10 * time.Millisecond) }
