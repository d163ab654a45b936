package portmap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// udpIdle is how long a UDP flow through the proxy lives without traffic (Docker's
// docker-proxy uses 90 s).
const udpIdle = 90 * time.Second

// Proxy carries one published port in user space, inside the daemon: goroutines, not a
// process per port as Docker's docker-proxy. It is for hosts where kernel NAT cannot serve a
// path (route_localnet forbidden, a firewall that drops DNATed traffic); with NAT in place it
// only receives what NAT does not catch.
type Proxy struct {
	m      Mapping
	target netip.AddrPort
	ln     net.Listener   // TCP
	pc     net.PacketConn // UDP
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[io.Closer]struct{}
	closed bool
}

// StartProxy listens on the mapping's host side and relays to containerIP:ContainerPort.
func StartProxy(m Mapping, containerIP netip.Addr) (*Proxy, error) {
	hostIP := m.HostIP
	if !hostIP.IsValid() {
		hostIP = netip.IPv4Unspecified()
	}
	addr := netip.AddrPortFrom(hostIP, m.HostPort).String()
	p := &Proxy{m: m, target: netip.AddrPortFrom(containerIP, m.ContainerPort), conns: map[io.Closer]struct{}{}}
	var err error
	family := "4"
	if hostIP.Is6() {
		family = "6"
	}
	switch m.Proto {
	case TCP:
		if p.ln, err = net.Listen("tcp"+family, addr); err == nil {
			p.wg.Add(1)
			go p.serveTCP()
		}
	case UDP:
		if p.pc, err = net.ListenPacket("udp"+family, addr); err == nil {
			p.wg.Add(1)
			go p.serveUDP()
		}
	default:
		return nil, fmt.Errorf("the userland proxy does not carry %s", m.Proto)
	}
	if err != nil {
		return nil, fmt.Errorf("userland proxy for %s: %w", m, err)
	}
	return p, nil
}

func (p *Proxy) track(c io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c io.Closer) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) serveTCP() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.spliceTCP(client)
		}()
	}
}

// spliceTCP copies both ways, passing each side's end of stream on as a half-close so that
// request/response protocols finish as they would end to end.
func (p *Proxy) spliceTCP(client net.Conn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	backend, err := net.DialTimeout("tcp", p.target.String(), 10*time.Second)
	if err != nil {
		return
	}
	if !p.track(backend) {
		return
	}
	defer p.untrack(backend)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(backend, client)
	go pipe(client, backend)
	<-done
	<-done
}

// serveUDP relays datagrams: one backend socket per client address, so replies find their way
// back, closed after udpIdle without traffic.
func (p *Proxy) serveUDP() {
	defer p.wg.Done()
	flows := map[string]net.Conn{}
	var mu sync.Mutex
	buf := make([]byte, 64*1024)
	for {
		n, from, err := p.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		mu.Lock()
		backend, ok := flows[from.String()]
		if !ok {
			backend, err = net.Dial("udp", p.target.String())
			if err != nil || !p.track(backend) {
				mu.Unlock()
				continue
			}
			flows[from.String()] = backend
			p.wg.Add(1)
			go func(key string, backend net.Conn, client net.Addr) {
				defer p.wg.Done()
				defer func() {
					mu.Lock()
					delete(flows, key)
					mu.Unlock()
					p.untrack(backend)
				}()
				reply := make([]byte, 64*1024)
				for {
					_ = backend.SetReadDeadline(time.Now().Add(udpIdle))
					m, err := backend.Read(reply)
					if err != nil {
						return
					}
					if _, err := p.pc.WriteTo(reply[:m], client); err != nil {
						return
					}
				}
			}(from.String(), backend, from)
		}
		mu.Unlock()
		_, _ = backend.Write(buf[:n])
	}
}

// Close stops listening, ends every relayed connection and waits for the goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	if p.pc != nil {
		err = p.pc.Close()
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}
