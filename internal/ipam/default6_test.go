package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestULAPrefix(t *testing.T) {
	a, b := ULAPrefix("engine-a"), ULAPrefix("engine-b")
	for _, p := range []netip.Prefix{a, b} {
		if p.Bits() != 48 || p.Addr().As16()[0] != 0xfd || p.Masked() != p {
			t.Fatalf("ULAPrefix = %s, want a masked fdXX:XXXX:XXXX::/48", p)
		}
	}
	if a == b {
		t.Fatalf("two engines got the same pool %s", a)
	}
	if ULAPrefix("engine-a") != a {
		t.Fatal("ULAPrefix is not stable for one seed")
	}
}

func TestPickDefault6(t *testing.T) {
	mp := netip.MustParsePrefix
	base := mp("fd12:3456:789a::/48")
	tests := []struct {
		name  string
		base  netip.Prefix
		inUse []netip.Prefix
		want  netip.Prefix
		err   error
	}{
		{"first", base, nil, mp("fd12:3456:789a::/64"), nil},
		{"skips used", base, []netip.Prefix{mp("fd12:3456:789a::/64"), mp("fd12:3456:789a:1::/64")}, mp("fd12:3456:789a:2::/64"), nil},
		{"skips a host address", base, []netip.Prefix{mp("fd12:3456:789a::5/64")}, mp("fd12:3456:789a:1::/64"), nil},
		{"ignores IPv4 and default routes", base, []netip.Prefix{mp("172.17.0.0/16"), mp("::/0")}, mp("fd12:3456:789a::/64"), nil},
		{"a /64 pool", mp("fd00:1::/64"), nil, mp("fd00:1::/64"), nil},
		{"a /64 pool in use", mp("fd00:1::/64"), []netip.Prefix{mp("fd00:1::/64")}, netip.Prefix{}, ErrNoDefaultPool6},
		{"all covered", mp("fd00:1::/62"), []netip.Prefix{mp("fd00::/16")}, netip.Prefix{}, ErrNoDefaultPool6},
		{"IPv4 base", mp("10.0.0.0/8"), nil, netip.Prefix{}, ErrInvalidConfig},
		{"too long", mp("fd00::/96"), nil, netip.Prefix{}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PickDefault6(tt.base, tt.inUse)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("PickDefault6 = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}
