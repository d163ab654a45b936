package portmap

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

func tcp(ip string, port uint16) Mapping {
	m := Mapping{HostPort: port, ContainerPort: 80, Proto: TCP}
	if ip != "" {
		m.HostIP = netip.MustParseAddr(ip)
	}
	return m
}

func wantConflict(t *testing.T, err error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", msg)
	}
	if !errors.Is(err, ErrAllocated) || !errdefs.Is(err, errdefs.KindConflict) {
		t.Fatalf("error %q is not a conflict (errors.Is ErrAllocated, errdefs.Conflict)", err)
	}
	if err.Error() != msg {
		t.Fatalf("error %q, want %q", err, msg)
	}
}

func TestReserveRandomDistinct(t *testing.T) {
	a := NewAllocator(40000, 40999)
	seen := map[uint16]bool{}
	for range 1000 {
		m, err := a.Reserve(Mapping{ContainerPort: 80, Proto: TCP})
		if err != nil {
			t.Fatal(err)
		}
		if m.HostPort < 40000 || m.HostPort > 40999 {
			t.Fatalf("port %d outside 40000-40999", m.HostPort)
		}
		if seen[m.HostPort] {
			t.Fatalf("port %d handed out twice", m.HostPort)
		}
		seen[m.HostPort] = true
	}
	// The range is full for tcp on all addresses, and so for any one address, but not for udp.
	_, err := a.Reserve(Mapping{ContainerPort: 80, Proto: TCP})
	if !errors.Is(err, ErrExhausted) || !errdefs.Is(err, errdefs.KindConflict) {
		t.Fatalf("full range: %v, want ErrExhausted", err)
	}
	if _, err := a.Reserve(Mapping{HostIP: lo, ContainerPort: 80, Proto: TCP}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full range on 127.0.0.1: %v, want ErrExhausted", err)
	}
	if _, err := a.Reserve(Mapping{ContainerPort: 80, Proto: UDP}); err != nil {
		t.Fatalf("udp must not share tcp's ports: %v", err)
	}
}

func TestReserveRandomSpread(t *testing.T) {
	// Random, not sequential: two fresh allocators rarely start at the same port.
	same := 0
	for range 20 {
		m1, _ := NewAllocator(1024, 65535).Reserve(Mapping{ContainerPort: 1, Proto: TCP})
		m2, _ := NewAllocator(1024, 65535).Reserve(Mapping{ContainerPort: 1, Proto: TCP})
		if m1.HostPort == m2.HostPort {
			same++
		}
	}
	if same > 2 {
		t.Fatalf("%d of 20 fresh allocators picked the same first port: not random", same)
	}
}

func TestReserveExhaustTinyRange(t *testing.T) {
	a := NewAllocator(100, 102)
	var got []Mapping
	for range 3 {
		m, err := a.Reserve(Mapping{ContainerPort: 80, Proto: UDP})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	_, err := a.Reserve(Mapping{ContainerPort: 80, Proto: UDP})
	if err == nil || !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "100-102") {
		t.Fatalf("4th port of a 3-port range: %v", err)
	}
	a.Release(got[1])
	m, err := a.Reserve(Mapping{ContainerPort: 80, Proto: UDP})
	if err != nil || m.HostPort != got[1].HostPort {
		t.Fatalf("after releasing %d got %+v, %v", got[1].HostPort, m, err)
	}
}

func TestReserveConflicts(t *testing.T) {
	a := NewAllocator(40000, 40010)
	if _, err := a.Reserve(tcp("", 8080)); err != nil {
		t.Fatal(err)
	}
	// The same port again, on all addresses (given or not) or on one address.
	_, err := a.Reserve(tcp("", 8080))
	wantConflict(t, err, "Bind for 0.0.0.0:8080 failed: port is already allocated")
	_, err = a.Reserve(tcp("0.0.0.0", 8080))
	wantConflict(t, err, "Bind for 0.0.0.0:8080 failed: port is already allocated")
	_, err = a.Reserve(tcp("127.0.0.1", 8080))
	wantConflict(t, err, "Bind for 127.0.0.1:8080 failed: port is already allocated")
	// Other protocol or other port: free.
	if _, err := a.Reserve(Mapping{HostPort: 8080, ContainerPort: 80, Proto: UDP}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reserve(tcp("", 8081)); err != nil {
		t.Fatal(err)
	}

	// One address first: other addresses are free, all addresses is not.
	if _, err := a.Reserve(tcp("127.0.0.1", 9090)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reserve(tcp("10.0.0.1", 9090)); err != nil {
		t.Fatal(err)
	}
	_, err = a.Reserve(tcp("", 9090))
	wantConflict(t, err, "Bind for 0.0.0.0:9090 failed: port is already allocated")
	_, err = a.Reserve(tcp("127.0.0.1", 9090))
	wantConflict(t, err, "Bind for 127.0.0.1:9090 failed: port is already allocated")

	// Releasing one of the two specific holders still blocks all addresses; releasing both frees it.
	a.Release(tcp("127.0.0.1", 9090))
	_, err = a.Reserve(tcp("0.0.0.0", 9090))
	wantConflict(t, err, "Bind for 0.0.0.0:9090 failed: port is already allocated")
	a.Release(tcp("10.0.0.1", 9090))
	a.Release(tcp("10.0.0.1", 9090)) // twice: no effect
	if _, err := a.Reserve(tcp("0.0.0.0", 9090)); err != nil {
		t.Fatalf("after release: %v", err)
	}
	// 0.0.0.0 and "not given" are the same holder.
	a.Release(tcp("", 9090))
	if _, err := a.Reserve(tcp("127.0.0.1", 9090)); err != nil {
		t.Fatalf("after releasing 0.0.0.0 as \"\": %v", err)
	}
	if n := a.InUse(); n != 4 {
		t.Fatalf("InUse = %d, want 4", n)
	}
}

func TestReserveHostRange(t *testing.T) {
	a := NewAllocator(40000, 40010)
	r := Mapping{HostPort: 8000, HostPortEnd: 8002, ContainerPort: 80, Proto: TCP}
	for _, want := range []uint16{8000, 8001, 8002} {
		m, err := a.Reserve(r)
		if err != nil {
			t.Fatal(err)
		}
		if m.HostPort != want || m.HostPortEnd != 0 || m.ContainerPort != 80 {
			t.Fatalf("got %+v, want host port %d and no range", m, want)
		}
	}
	_, err := a.Reserve(r)
	wantConflict(t, err, "Bind for 0.0.0.0:8000-8002 failed: port is already allocated")
	a.Release(tcp("", 8001))
	if m, err := a.Reserve(r); err != nil || m.HostPort != 8001 {
		t.Fatalf("after release: %+v, %v", m, err)
	}
}

func TestReserveAllRollsBack(t *testing.T) {
	a := NewAllocator(40000, 40010)
	if _, err := a.Reserve(tcp("", 8005)); err != nil {
		t.Fatal(err)
	}
	ms, err := ParseSpec("8000-8009:80-89")
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.ReserveAll(ms)
	wantConflict(t, err, "Bind for 0.0.0.0:8005 failed: port is already allocated")
	if n := a.InUse(); n != 1 {
		t.Fatalf("after a failed ReserveAll %d ports are held, want 1", n)
	}
	a.Release(tcp("", 8005))
	got, err := a.ReserveAll(ms)
	if err != nil || len(got) != 10 {
		t.Fatalf("ReserveAll: %d, %v", len(got), err)
	}
	a.ReleaseAll(got)
	if n := a.InUse(); n != 0 {
		t.Fatalf("after ReleaseAll %d held", n)
	}
}

func TestReserveProbe(t *testing.T) {
	a := NewAllocator(100, 104)
	busy := map[uint16]bool{100: true, 101: true, 102: true, 103: true}
	a.Probe = func(m Mapping) error {
		if busy[m.HostPort] {
			return &ConflictError{HostIP: m.HostIP, HostPort: m.HostPort, Proto: m.Proto, Host: true}
		}
		return nil
	}
	// A random pick skips what the probe refuses.
	m, err := a.Reserve(Mapping{ContainerPort: 80, Proto: TCP})
	if err != nil || m.HostPort != 104 {
		t.Fatalf("got %+v, %v; want the only free port 104", m, err)
	}
	// An explicit port the host holds is refused, naming the host.
	_, err = a.Reserve(tcp("", 101))
	wantConflict(t, err, "Bind for 0.0.0.0:101 failed: port is already allocated by a socket on the host")
	// Other probe errors are returned as they are.
	a.Probe = func(Mapping) error { return errdefs.Invalid("not an address of this host") }
	if _, err := a.Reserve(tcp("192.0.2.1", 500)); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Fatalf("probe error: %v", err)
	}
	if n := a.InUse(); n != 1 {
		t.Fatalf("InUse = %d, want 1", n)
	}
}

func TestReserveInvalid(t *testing.T) {
	a := NewAllocator(100, 104)
	for _, m := range []Mapping{
		{HostPort: 80, ContainerPort: 80, Proto: "icmp"},
		{HostIP: netip.MustParseAddr("::ffff:127.0.0.1"), HostPort: 80, ContainerPort: 80, Proto: TCP},
		{HostIP: netip.MustParseAddr("fe80::1%eth0"), HostPort: 80, ContainerPort: 80, Proto: TCP},
		{HostPort: 90, HostPortEnd: 80, ContainerPort: 80, Proto: TCP},
	} {
		if _, err := a.Reserve(m); !errdefs.Is(err, errdefs.KindInvalid) {
			t.Errorf("Reserve(%+v) = %v, want an invalid-input error", m, err)
		}
	}
}

func TestEphemeralRange(t *testing.T) {
	lo, hi := EphemeralRange()
	if lo == 0 || hi < lo {
		t.Fatalf("EphemeralRange() = %d-%d", lo, hi)
	}
}

// TestProbeHost binds only on 127.0.0.1 of the test's own namespace, as any unit test that
// starts a local server does; it sends no traffic.
func TestProbeHost(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.1: %v", err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	err = ProbeHost(tcp("127.0.0.1", port))
	wantConflict(t, err, "Bind for 127.0.0.1:"+itoa(port)+" failed: port is already allocated by a socket on the host")
	// All addresses include 127.0.0.1: refused too (and nothing gets bound).
	err = ProbeHost(tcp("0.0.0.0", port))
	wantConflict(t, err, "Bind for 0.0.0.0:"+itoa(port)+" failed: port is already allocated by a socket on the host")
	l.Close()
	if err := ProbeHost(tcp("127.0.0.1", port)); err != nil {
		t.Fatalf("after close: %v", err)
	}
	// The probe left nothing bound: the port can be listened on again.
	l2, err := net.Listen("tcp4", "127.0.0.1:"+itoa(port))
	if err != nil {
		t.Fatalf("probe left the port bound: %v", err)
	}
	l2.Close()

	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	uport := uint16(u.LocalAddr().(*net.UDPAddr).Port)
	um := Mapping{HostIP: lo, HostPort: uport, ContainerPort: 53, Proto: UDP}
	if err := ProbeHost(um); !errors.Is(err, ErrAllocated) {
		t.Fatalf("udp port held by a socket: %v", err)
	}
	u.Close()
	if err := ProbeHost(um); err != nil {
		t.Fatalf("udp after close: %v", err)
	}
	if err := ProbeHost(Mapping{HostIP: lo, HostPort: uport, ContainerPort: 1, Proto: SCTP}); err != nil && !errors.Is(err, ErrAllocated) {
		t.Fatalf("sctp probe: %v", err)
	}

	// An address the host does not have (TEST-NET-1; bind fails locally, nothing is sent).
	if err := ProbeHost(tcp("192.0.2.1", 8080)); !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), "not an address of this host") {
		t.Fatalf("foreign address: %v", err)
	}
	if err := ProbeHost(Mapping{ContainerPort: 80, Proto: TCP}); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Fatalf("probe without a host port: %v", err)
	}
}

// TestProbeHostIPv6: an IPv6 host address is probed with an IPv6-only socket, so a port held
// on [::1] is refused there and not on 127.0.0.1, and the reverse.
func TestProbeHostIPv6(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("cannot listen on [::1]: %v", err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	m := Mapping{HostIP: netip.IPv6Loopback(), HostPort: port, ContainerPort: 80, Proto: TCP}
	wantConflict(t, ProbeHost(m), "Bind for [::1]:"+itoa(port)+" failed: port is already allocated by a socket on the host")
	if err := ProbeHost(tcp("127.0.0.1", port)); err != nil {
		t.Fatalf("127.0.0.1 with the port held on [::1] only: %v", err)
	}
	// TEST-NET for IPv6 (2001:db8::/32): not an address of this host.
	if err := ProbeHost(Mapping{HostIP: netip.MustParseAddr("2001:db8::1"), HostPort: 8080, ContainerPort: 80, Proto: TCP}); !errdefs.Is(err, errdefs.KindInvalid) {
		t.Fatalf("foreign IPv6 address: %v", err)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// BenchmarkReserveRelease reserves and releases an explicit port with 0 and 20,000 ports
// already held: the same cost, the state being a map.
func BenchmarkReserveRelease(b *testing.B) {
	for _, held := range []int{0, 20000} {
		b.Run("held="+strconv.Itoa(held), func(b *testing.B) {
			a := NewAllocator(32768, 60999)
			for i := range held {
				if _, err := a.Reserve(tcp("", uint16(1024+i))); err != nil {
					b.Fatal(err)
				}
			}
			m := tcp("127.0.0.1", 30000)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Reserve(m); err != nil {
					b.Fatal(err)
				}
				a.Release(m)
			}
		})
	}
}

// TestReserveFamilies: the all-addresses wildcard is per family, as an IPv6-only socket and
// an IPv4 one may hold the same port: 0.0.0.0:8080 and [::]:8080 are both reserved (Docker's
// default binding), [::1]:8080 then conflicts with [::]:8080 but 127.0.0.1:8081 does not
// conflict with [::]:8081.
func TestReserveFamilies(t *testing.T) {
	a := NewAllocator(100, 104)
	m := func(ip string, port uint16) Mapping {
		return Mapping{HostIP: netip.MustParseAddr(ip), HostPort: port, ContainerPort: 80, Proto: TCP}
	}
	for _, ok := range []Mapping{m("0.0.0.0", 8080), m("::", 8080), m("::", 8081), m("127.0.0.1", 8081)} {
		if _, err := a.Reserve(ok); err != nil {
			t.Fatalf("Reserve(%s): %v", ok, err)
		}
	}
	for _, taken := range []Mapping{m("::1", 8080), m("127.0.0.1", 8080), m("::", 8081)} {
		if _, err := a.Reserve(taken); !errors.Is(err, ErrAllocated) {
			t.Errorf("Reserve(%s) = %v, want a conflict", taken, err)
		}
	}
	if _, err := a.Reserve(tcp("", 8080)); !errors.Is(err, ErrAllocated) {
		t.Errorf("an unset host address is IPv4's wildcard: %v", err)
	}
	a.Release(m("::", 8080))
	if _, err := a.Reserve(m("::1", 8080)); err != nil {
		t.Errorf("after releasing [::]:8080: %v", err)
	}
}
