package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestLocalAllocator(t *testing.T) {
	l := NewLocal()
	var _ Allocator = l
	// A picked pool avoids what it is told to.
	picked, err := l.RequestPool(PoolRequest{Owner: "n1", Avoid: []netip.Prefix{netip.MustParsePrefix("172.17.0.0/16")}})
	if err != nil || picked.Subnet != netip.MustParsePrefix("172.18.0.0/16") || picked.Gateway != netip.MustParseAddr("172.18.0.1") {
		t.Fatalf("picked pool = %+v, %v; want 172.18.0.0/16 via 172.18.0.1", picked, err)
	}
	given, err := l.RequestPool(PoolRequest{Owner: "n2", Config: Config{Subnet: netip.MustParsePrefix("10.9.0.0/29")}})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"same pool twice", func() error {
			_, err := l.RequestPool(PoolRequest{Owner: "n2", Config: Config{Subnet: netip.MustParsePrefix("10.9.0.0/29")}})
			return err
		}, ErrOverlap},
		{"invalid config", func() error {
			_, err := l.RequestPool(PoolRequest{Owner: "n3", Config: Config{Subnet: netip.MustParsePrefix("10.9.0.0/31")}})
			return err
		}, ErrInvalidConfig},
		{"next free", func() error { return wantAddr(l, given.ID, netip.Addr{}, "10.9.0.2") }, nil},
		{"static", func() error { return wantAddr(l, given.ID, netip.MustParseAddr("10.9.0.5"), "10.9.0.5") }, nil},
		{"static taken", func() error { return wantAddr(l, given.ID, netip.MustParseAddr("10.9.0.5"), "") }, ErrInUse},
		{"gateway reserved", func() error { return wantAddr(l, given.ID, netip.MustParseAddr("10.9.0.1"), "") }, ErrReserved},
		{"release", func() error { return l.ReleaseAddress(given.ID, netip.MustParseAddr("10.9.0.2")) }, nil},
		{"release twice", func() error { return l.ReleaseAddress(given.ID, netip.MustParseAddr("10.9.0.2")) }, ErrNotAllocated},
		{"lowest free again", func() error { return wantAddr(l, given.ID, netip.Addr{}, "10.9.0.2") }, nil},
		{"unknown pool", func() error { return wantAddr(l, "nope", netip.Addr{}, "") }, ErrUnknownPool},
		{"release pool", func() error { return l.ReleasePool(given.ID) }, nil},
		{"released pool is gone", func() error { return wantAddr(l, given.ID, netip.Addr{}, "") }, ErrUnknownPool},
		{"release pool twice", func() error { return l.ReleasePool(given.ID) }, ErrUnknownPool},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", s.name, err, s.want)
		}
	}
}

func wantAddr(l *Local, id PoolID, want netip.Addr, expect string) error {
	got, err := l.RequestAddress(id, want)
	if err != nil {
		return err
	}
	if got.String() != expect {
		return errors.New("got " + got.String() + ", want " + expect)
	}
	return nil
}
