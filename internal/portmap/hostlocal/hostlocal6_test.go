package hostlocal

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func svc(host, ctr string) Service {
	return Service{Host: netip.MustParseAddrPort(host), Container: netip.MustParseAddrPort(ctr)}
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
