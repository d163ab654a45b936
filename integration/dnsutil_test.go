package integration

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// machineNetNS is the namespace the test binary started in: the machine's own, which no test
// may send traffic from.
var machineNetNS, _ = netns.Get()

// inNetNS runs fn on a thread inside the network namespace at path; sockets fn opens stay
// there after it returns. It refuses the machine's own namespace (a PID of the wrong PID
// namespace in a /proc path would otherwise land a test there).
func inNetNS(t *testing.T, path string, fn func()) {
	t.Helper()
	if err := onThreadIn(path, func() error { fn(); return nil }); err != nil {
		t.Fatalf("in network namespace %s: %v", path, err)
	}
}

// onThreadIn runs fn on a locked thread inside the network namespace at path (never the
// machine's own) and brings the thread back.
func onThreadIn(path string, fn func() error) error {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if target.Equal(machineNetNS) {
		return fmt.Errorf("refusing %s: it is the machine's own network namespace", path)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer origin.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(origin); err != nil {
			errc <- err // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// query asks a container's embedded resolver (127.0.0.11:53, from inside its namespace)
// about name, over net ("udp" or "tcp").
func query(t *testing.T, h *testenv.Host, container, name string, qtype uint16, network string) *mdns.Msg {
	t.Helper()
	key := strings.TrimSpace(h.MustCLI("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", container))
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	var resp *mdns.Msg
	var err error
	inNetNS(t, h.Path(key), func() {
		c := &mdns.Client{Net: network, Timeout: 3 * time.Second}
		resp, _, err = c.Exchange(m, "127.0.0.11:53")
	})
	if err != nil {
		t.Fatalf("query %s %s from %s: %v", mdns.TypeToString[qtype], name, container, err)
	}
	return resp
}

// addrs returns the A records of an answer.
func addrs(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*mdns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

// aaaas returns the AAAA records of an answer.
func aaaas(m *mdns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*mdns.AAAA); ok {
			out = append(out, a.AAAA.String())
		}
	}
	return out
}

// stubUpstream is the test's own upstream DNS server on 127.0.0.1:53 in the host namespace
// (testenv's hosts point their resolv.conf there). It answers every A query with answer,
// and, when big, with enough records that the UDP answer is truncated.
type stubUpstream struct {
	mu      sync.Mutex
	queries []string
	servers []*mdns.Server
	socks   []io.Closer
}

func startStub(t *testing.T, h *testenv.Host, answer string, big bool) *stubUpstream {
	t.Helper()
	return startStubAt(t, h.NetNS(), "127.0.0.1:53", answer, big)
}

// startStubAt is startStub listening on addr in the namespace at ns.
func startStubAt(t *testing.T, ns, addr, answer string, big bool) *stubUpstream {
	t.Helper()
	s := &stubUpstream{}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		s.mu.Lock()
		s.queries = append(s.queries, w.RemoteAddr().Network()+" "+r.Question[0].Name)
		s.mu.Unlock()
		m := new(mdns.Msg)
		m.SetReply(r)
		n := 1
		if big {
			n = 60
		}
		for i := 0; i < n; i++ {
			rr, _ := mdns.NewRR(r.Question[0].Name + " 60 IN A " + answer)
			m.Answer = append(m.Answer, rr)
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp && m.Len() > 512 {
			m.Truncate(512)
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var l net.Listener
	inNetNS(t, ns, func() {
		var err error
		if pc, err = net.ListenPacket("udp", addr); err != nil {
			t.Error(err)
			return
		}
		if l, err = net.Listen("tcp", addr); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	s.socks = []io.Closer{pc, l}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		s.servers = append(s.servers, srv)
	}
	t.Cleanup(s.stop)
	return s
}

// stop shuts the servers down and closes their sockets itself, so that the next stub can bind
// the same port at once (Shutdown alone may leave the socket open for a moment).
func (s *stubUpstream) stop() {
	for _, srv := range s.servers {
		_ = srv.Shutdown()
	}
	for _, c := range s.socks {
		_ = c.Close()
	}
	s.servers, s.socks = nil, nil
}

func (s *stubUpstream) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}
