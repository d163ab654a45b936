package hostlocal

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addAddrs puts addresses on lo, with no duplicate address detection to wait for.
func addAddrs(t *testing.T, prefixes ...string) {
	t.Helper()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatalf("lo: %v", err)
	}
	for _, p := range prefixes {
		a, err := netlink.ParseAddr(p)
		if err != nil {
			t.Fatal(err)
		}
		a.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(lo, a); err != nil {
			t.Fatalf("adding %s to lo: %v", p, err)
		}
	}
}

func svc(host, ctr string) Service {
	return Service{Host: netip.MustParseAddrPort(host), Container: netip.MustParseAddrPort(ctr)}
}

func TestRedirector6(t *testing.T) {
	inNewNetns(t, func() {
		// 2001:db8::1 is a host address, 2001:db8::2 the "container".
		addAddrs(t, "2001:db8::1/128", "2001:db8::2/128")
		r, err := Attach()
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
		defer r.Close()
		any9000 := server(t, "[2001:db8::2]:9000")
		exact9001 := server(t, "[2001:db8::2]:9001")
		v4 := server(t, "127.0.0.5:9000")
		svcs := []Service{ // mixed: both maps at once
			svc("[::]:8080", "[2001:db8::2]:9000"),
			svc("[2001:db8::1]:8081", "[2001:db8::2]:9001"),
			svc("[::1]:8083", "[2001:db8::2]:9001"),
			svc("0.0.0.0:8080", "127.0.0.5:9000"),
		}
		if err := r.Add(svcs); err != nil {
			t.Fatalf("Add: %v", err)
		}
		if n := r.Len(); n != 4 {
			t.Errorf("Len = %d, want 4", n)
		}
		checkDials(t, []dialCase{
			{"[::1]:8080", any9000, "[2001:db8::2]:9000"}, // the wildcard serves ::1
			{"[::]:8080", any9000, "[2001:db8::2]:9000"},  // :: is the host itself, as ::1
			{"[2001:db8::1]:8081", exact9001, "[2001:db8::2]:9001"},
			{"[::1]:8083", exact9001, "[2001:db8::2]:9001"}, // published on ::1 itself
			{"127.0.0.1:8080", v4, "127.0.0.5:9000"},        // IPv4 alongside
			{"[::1]:8081", nil, ""},                         // published on 2001:db8::1 only
			{"[2001:db8::1]:8080", nil, ""},                 // the wildcard serves ::1 alone
			{"[::1]:8082", nil, ""},                         // not published
			// IPv4-mapped, from an IPv6 socket: left to NAT, though 0.0.0.0:8080 is published
			// (and connect4 does not run for it).
			{"[::ffff:127.0.0.1]:8080", nil, ""},
		})

		// UDP is left to NAT: a connected UDP socket keeps the address it was given.
		u, err := net.Dial("udp6", "[::1]:8080")
		if err != nil {
			t.Fatalf("udp dial: %v", err)
		}
		if got := u.RemoteAddr().String(); got != "[::1]:8080" {
			t.Errorf("udp connect translated to %s", got)
		}
		u.Close()

		// Another namespace is not translated, though the program sees its connect too.
		inNewNetns(t, func() {
			if _, err := dial("[::1]:8080"); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial from another namespace: %v, want refused (not translated)", err)
			}
		})

		if err := r.Remove(svcs[:1]); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if n := r.Len(); n != 3 {
			t.Errorf("Len after Remove = %d, want 3", n)
		}
		checkDials(t, []dialCase{
			{"[::1]:8080", nil, ""},
			{"127.0.0.1:8080", v4, "127.0.0.5:9000"}, // the IPv4 wildcard of the same port stays
			{"[2001:db8::1]:8081", exact9001, "[2001:db8::2]:9001"},
		})
		if err := r.Remove(svcs); err != nil { // svcs[0] is missing by now
			t.Errorf("Remove of a removed service: %v", err)
		}
		if n := r.Len(); n != 0 {
			t.Errorf("Len after removing all = %d, want 0", n)
		}
		checkDials(t, []dialCase{{"[2001:db8::1]:8081", nil, ""}, {"127.0.0.1:8080", nil, ""}})
	})
}

// TestAddAllOrNothing has the IPv6 half of a mixed Add fail (its map has room for one) after
// the IPv4 half went in: neither map may keep anything of the call.
func TestAddAllOrNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (BPF)")
	}
	r := &Redirector{}
	defer r.Close()
	var err error
	if r.services, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: 16}); err != nil {
		t.Fatal(err)
	}
	if r.services6, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: entrySize6, ValueSize: entrySize6, MaxEntries: 1}); err != nil {
		t.Fatal(err)
	}
	kept := svc("[2001:db8::1]:1", "[2001:db8::2]:1")
	mixed := []Service{
		svc("0.0.0.0:80", "10.0.0.2:80"),
		svc("10.0.0.1:81", "10.0.0.2:81"),
		svc("[::]:80", "[2001:db8::2]:80"),
		svc("[::]:81", "[2001:db8::2]:81"),
	}
	if err := r.Add(mixed); err == nil {
		t.Fatal("Add of two IPv6 ports to a map with room for one succeeded")
	}
	if n := r.Len(); n != 0 {
		t.Errorf("Len after a failed Add = %d, want 0", n)
	}
	if err := r.Add([]Service{kept}); err != nil {
		t.Fatalf("Add: %v", err)
	}
	// One bad service: refused before either map is touched.
	if err := r.Add([]Service{mixed[0], svc("[::]:82", "10.0.0.2:82")}); err == nil {
		t.Error("Add of a mixed-family service succeeded")
	}
	if n := r.Len(); n != 1 {
		t.Errorf("Len = %d, want the 1 added before", n)
	}
}

func TestEncode(t *testing.T) {
	e, err := encode([]Service{
		{Host: netip.AddrPortFrom(netip.Addr{}, 8080), Container: netip.MustParseAddrPort("10.0.0.2:80")},
		svc("127.0.0.3:443", "10.0.0.2:8443"),
		svc("[::]:8080", "[fd00::2]:80"),
		svc("[2001:db8::1]:443", "[fd00::2]:8443"),
	})
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	want4 := [][8]byte{
		{0, 0, 0, 0, 0x1f, 0x90}, {10, 0, 0, 2, 0, 80},
		{127, 0, 0, 3, 0x01, 0xbb}, {10, 0, 0, 2, 0x20, 0xfb},
	}
	for i := range 2 {
		if e.keys4[i] != want4[2*i] || e.values4[i] != want4[2*i+1] {
			t.Errorf("IPv4 entry %d: %v → %v, want %v → %v", i, e.keys4[i], e.values4[i], want4[2*i], want4[2*i+1])
		}
	}
	entry6 := func(a string, port uint16) (b [entrySize6]byte) {
		ip := netip.MustParseAddr(a).As16()
		copy(b[:], ip[:])
		b[16], b[17] = byte(port>>8), byte(port)
		return b
	}
	want6 := [][entrySize6]byte{
		entry6("::", 8080), entry6("fd00::2", 80),
		entry6("2001:db8::1", 443), entry6("fd00::2", 8443),
	}
	if len(e.keys6) != 2 || len(e.values6) != 2 || len(e.keys4) != 2 {
		t.Fatalf("encoded %d IPv4 and %d IPv6 services, want 2 and 2", len(e.keys4), len(e.keys6))
	}
	for i := range 2 {
		if !bytes.Equal(e.keys6[i][:], want6[2*i][:]) || !bytes.Equal(e.values6[i][:], want6[2*i+1][:]) {
			t.Errorf("IPv6 entry %d: %x → %x, want %x → %x", i, e.keys6[i], e.values6[i], want6[2*i], want6[2*i+1])
		}
	}
}

func TestEncodeRefuses(t *testing.T) {
	for _, tt := range []struct {
		s    Service
		says string
	}{
		{svc("[::]:80", "10.0.0.2:80"), "different families"},
		{svc("[::1]:80", "10.0.0.2:80"), "different families"},
		{svc("0.0.0.0:80", "[fd00::2]:80"), "different families"},
		{Service{Container: netip.MustParseAddrPort("[fd00::2]:80")}, "different families"}, // the zero host is IPv4's
		{svc("127.0.0.1:80", "[fd00::2]:80"), "different families"},
		{svc("[::ffff:127.0.0.1]:80", "[fd00::2]:80"), "IPv4-mapped"},
		{svc("[::1]:80", "[::ffff:10.0.0.2]:80"), "IPv4-mapped"},
		{svc("[::1]:80", "[::]:80"), "no container address"},
		{Service{Host: netip.MustParseAddrPort("[::1]:80")}, "no container address"},
	} {
		_, err := encode([]Service{svc("0.0.0.0:1", "10.0.0.2:1"), tt.s})
		if err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("encode %v: %v, want an error saying %q", tt.s, err, tt.says)
		}
	}
}
