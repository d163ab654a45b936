package portmap

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// The proxy is tested on loopback: a backend on 127.0.0.1, the proxy on another 127.0.0.1 port.
func TestProxyTCP(t *testing.T) {
	backend, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				data, _ := io.ReadAll(c) // until the client's half-close
				_, _ = c.Write(append([]byte("echo:"), data...))
			}()
		}
	}()
	bport := backend.Addr().(*net.TCPAddr).Port
	p, err := StartProxy(Mapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: freePort(t, "tcp"), ContainerPort: uint16(bport), Proto: TCP},
		netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp4", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte("hello"))
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "echo:hello" {
		t.Fatalf("through the proxy: %q %v", got, err)
	}
}

func TestProxyUDP(t *testing.T) {
	backend, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := backend.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = backend.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	bport := backend.LocalAddr().(*net.UDPAddr).Port
	p, err := StartProxy(Mapping{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: freePort(t, "udp"), ContainerPort: uint16(bport), Proto: UDP},
		netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp4", p.pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for _, msg := range []string{"one", "two"} {
		_, _ = c.Write([]byte(msg))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo:"+msg {
			t.Fatalf("through the proxy: %q %v", buf[:n], err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T, proto string) uint16 {
	t.Helper()
	if proto == "udp" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}
