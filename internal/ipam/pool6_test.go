package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestPoolIPv6: an IPv6 pool hands out addresses as an IPv4 one does (gateway ::1 by default,
// then ::2, ::3, the lowest free first), with no broadcast address, the subnet-router anycast
// address never given, --ip-range, --aux-address and static addresses, and a /64 whose
// all-ones interface ID is left out.
func TestPoolIPv6(t *testing.T) {
	p, err := NewPool(Config{Subnet: pfx("fd00:1::/64")})
	if err != nil {
		t.Fatal(err)
	}
	if p.Gateway() != addr("fd00:1::1") {
		t.Errorf("gateway %s", p.Gateway())
	}
	for _, want := range []string{"fd00:1::2", "fd00:1::3", "fd00:1::4"} {
		if a, err := p.Allocate(); err != nil || a != addr(want) {
			t.Fatalf("Allocate = %s, %v; want %s", a, err, want)
		}
	}
	if err := p.Release(addr("fd00:1::3")); err != nil {
		t.Fatal(err)
	}
	if a, _ := p.Allocate(); a != addr("fd00:1::3") {
		t.Errorf("a released address is not reused first: got %s", a)
	}
	for _, tt := range []struct {
		a    string
		want error
		msg  string
	}{
		{"fd00:1::ffff:ffff:ffff:fffe", nil, ""},
		{"fd00:1::", ErrReserved, "subnet-router anycast"},
		{"fd00:1::ffff:ffff:ffff:ffff", ErrReserved, "all-ones interface ID"},
		{"fd00:1::1", ErrReserved, "gateway"},
		{"fd00:1::2", ErrInUse, ""},
		{"fd00:2::5", ErrOutsideSubnet, "fd00:1::/64"},
		{"10.0.0.5", ErrOutsideSubnet, ""},
	} {
		err := p.AllocateStatic(addr(tt.a))
		if !errors.Is(err, tt.want) || (err != nil && !strings.Contains(err.Error(), tt.msg)) {
			t.Errorf("AllocateStatic(%s) = %v, want %v (%q)", tt.a, err, tt.want, tt.msg)
		}
	}
	if !p.Allocated(addr("fd00:1::ffff:ffff:ffff:fffe")) || p.Allocated(addr("fd00:1::99")) {
		t.Error("Allocated is wrong")
	}

	r, err := NewPool(Config{Subnet: pfx("fd00:2::/64"), IPRange: pfx("fd00:2::100/120"), Gateway: addr("fd00:2::1"),
		Aux: map[string]netip.Addr{"router": addr("fd00:2::100")}})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := r.Allocate(); a != addr("fd00:2::101") {
		t.Errorf("first address of --ip-range fd00:2::100/120 past the aux address: %s", a)
	}

	// A /126 has ::1 (gateway), ::2 and ::3 (no broadcast): two containers, then exhausted.
	small, err := NewPool(Config{Subnet: pfx("fd00:3::/126")})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fd00:3::2", "fd00:3::3"} {
		if a, err := small.Allocate(); err != nil || a != addr(want) {
			t.Fatalf("Allocate = %s, %v; want %s", a, err, want)
		}
	}
	if _, err := small.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("a full /126 allocated: %v", err)
	}
}
