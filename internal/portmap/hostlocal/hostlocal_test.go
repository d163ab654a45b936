package hostlocal

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inNewNetns runs fn on a thread of its own in a new, throwaway network namespace with lo up,
// and a mount namespace of its own with the cgroup v2 hierarchy mounted (a machine may have
// none mounted). The thread is never unlocked, so the runtime discards it and the namespaces
// go with it.
func inNewNetns(t testing.TB, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces and BPF)")
	}
	cgroup := t.TempDir()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWNS); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("making mounts private: %v", err)
			return
		}
		if err := unix.Mount("cgroup2", cgroup, "cgroup2", 0, ""); err != nil {
			t.Errorf("mounting cgroup2: %v", err)
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err != nil {
			t.Errorf("lo up: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// server accepts connections on addr and reports the local address each one arrived at.
func server(t *testing.T, addr string) <-chan string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			got <- c.LocalAddr().String()
			c.Close()
		}
	}()
	return got
}

// dial connects from the calling thread's namespace, with a socket of addr's family (an
// IPv4-mapped address: IPv6), and returns the peer getpeername gives, or the error.
func dial(addr string) (string, error) {
	ap := netip.MustParseAddrPort(addr)
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())})
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sa); err != nil {
		return "", err
	}
	peer, err := unix.Getpeername(fd)
	if err != nil {
		return "", err
	}
	switch in := peer.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port)).String(), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr), uint16(in.Port)).String(), nil
	}
	return "", fmt.Errorf("getpeername gave %T", peer)
}

// dialCase is a connection to make and where it should arrive.
type dialCase struct {
	dial    string
	arrives <-chan string // nil: refused, nothing listens there
	at      string
}

// checkDials makes each connection and checks that it arrives where it should, and that
// getpeername gives the address dialled.
func checkDials(t *testing.T, tests []dialCase) {
	t.Helper()
	for _, tt := range tests {
		peer, err := dial(tt.dial)
		if tt.arrives == nil {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial %s: peer %q, err %v; want it refused (not translated)", tt.dial, peer, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("dial %s: %v", tt.dial, err)
			continue
		}
		if peer != tt.dial {
			t.Errorf("dial %s: getpeername gives %s, want the address dialled", tt.dial, peer)
		}
		select {
		case at := <-tt.arrives:
			if at != tt.at {
				t.Errorf("dial %s arrived at %s, want %s", tt.dial, at, tt.at)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("dial %s: nothing arrived", tt.dial)
		}
	}
}

func TestRedirector(t *testing.T) {
	inNewNetns(t, func() {
		r, err := Attach()
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		defer r.Close()
		any9000 := server(t, "127.0.0.5:9000")
		exact9001 := server(t, "127.0.0.5:9001")
		svcs := []Service{
			{Host: netip.MustParseAddrPort("0.0.0.0:8080"), Container: netip.MustParseAddrPort("127.0.0.5:9000")},
			{Host: netip.MustParseAddrPort("127.0.0.3:8081"), Container: netip.MustParseAddrPort("127.0.0.5:9001")},
		}
		if err := r.Add(svcs); err != nil {
			t.Fatalf("Add: %v", err)
		}
		if n := r.Len(); n != 2 {
			t.Errorf("Len = %d, want 2", n)
		}
		checkDials(t, []dialCase{
			{"127.0.0.1:8080", any9000, "127.0.0.5:9000"},
			{"127.0.0.2:8080", any9000, "127.0.0.5:9000"}, // all of 127.0.0.0/8
			{"127.0.0.3:8081", exact9001, "127.0.0.5:9001"},
			{"127.0.0.4:8081", nil, ""}, // published on 127.0.0.3 only
			{"127.0.0.1:8082", nil, ""}, // not published
		})

		// UDP is left to NAT: a connected UDP socket keeps the address it was given.
		u, err := net.Dial("udp4", "127.0.0.1:8080")
		if err != nil {
			t.Fatalf("udp dial: %v", err)
		}
		if got := u.RemoteAddr().String(); got != "127.0.0.1:8080" {
			t.Errorf("udp connect translated to %s", got)
		}
		u.Close()

		// Another namespace is not translated, though the program sees its connect too.
		inNewNetns(t, func() {
			if _, err := dial("127.0.0.1:8080"); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial from another namespace: %v, want refused (not translated)", err)
			}
		})

		if err := r.Remove(svcs[:1]); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := dial("127.0.0.1:8080"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial after Remove: %v, want refused", err)
		}
		if err := r.Remove(svcs[:1]); err != nil {
			t.Errorf("Remove of a removed service: %v", err)
		}
		ours := attached(t, r)
		if len(ours) != 4 {
			t.Fatalf("attached programs of ours: %v, want connect4, getpeername4, connect6 and getpeername6", ours)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if left := attached(t, nil, ours...); len(left) > 0 {
			t.Errorf("programs %v still attached after Close", left)
		}
		if _, err := dial("127.0.0.3:8081"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial after Close: %v, want refused (programs detached)", err)
		}
	})
}

// attached lists the programs attached to the cgroup v2 root, for the four hooks, that are r's
// (or, with r nil, that are among ids).
func attached(t *testing.T, r *Redirector, ids ...ebpf.ProgramID) []ebpf.ProgramID {
	t.Helper()
	if r != nil {
		for _, p := range r.progs {
			info, err := p.Info()
			if err != nil {
				t.Fatal(err)
			}
			id, _ := info.ID()
			ids = append(ids, id)
		}
	}
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	cg, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	var out []ebpf.ProgramID
	for _, at := range []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCgroupInet4GetPeername,
		ebpf.AttachCGroupInet6Connect, ebpf.AttachCgroupInet6GetPeername} {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: at})
		if err != nil {
			t.Fatalf("querying %s programs: %v", at, err)
		}
		for _, p := range res.Programs {
			if slices.Contains(ids, p.ID) {
				out = append(out, p.ID)
			}
		}
	}
	return out
}

// BenchmarkAddRemove1000 is the translation's share of publishing a 1000-port range: one
// batch of 1000 map elements in, then out.
func BenchmarkAddRemove1000(b *testing.B) {
	svcs := make([]Service, 1000)
	for i := range svcs {
		svcs[i] = Service{Host: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(20000+i)),
			Container: netip.AddrPortFrom(netip.MustParseAddr("172.17.0.2"), uint16(20000+i))}
	}
	inNewNetns(b, func() {
		r, err := Attach()
		if err != nil {
			b.Error(err)
			return
		}
		defer r.Close()
		b.ResetTimer()
		for range b.N {
			if err := r.Add(svcs); err != nil {
				b.Error(err)
				return
			}
			if err := r.Remove(svcs); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
