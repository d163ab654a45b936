package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func mustPool(t testing.TB, c Config) *Pool {
	t.Helper()
	p, err := NewPool(c)
	if err != nil {
		t.Fatalf("NewPool(%+v): %v", c, err)
	}
	return p
}

func mustAlloc(t testing.TB, p *Pool) netip.Addr {
	t.Helper()
	a, err := p.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	return a
}

var (
	pfx  = netip.MustParsePrefix
	addr = netip.MustParseAddr
)

// TestAllocateSequence checks which addresses containers get, in order, for the
// configurations users write.
func TestAllocateSequence(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		gateway string
		want    []string // the first addresses handed out, in order
		last    string   // the last address before exhaustion ("" = don't drain)
		count   int      // how many addresses until exhaustion (with last)
	}{
		{
			name:    "default gateway is .1, containers from .2",
			cfg:     Config{Subnet: pfx("172.18.0.0/16")},
			gateway: "172.18.0.1",
			want:    []string{"172.18.0.2", "172.18.0.3", "172.18.0.4"},
		},
		{
			name:    "explicit gateway is skipped",
			cfg:     Config{Subnet: pfx("10.1.0.0/24"), Gateway: addr("10.1.0.3")},
			gateway: "10.1.0.3",
			want:    []string{"10.1.0.1", "10.1.0.2", "10.1.0.4"},
		},
		{
			name:    "gateway at the end of the subnet",
			cfg:     Config{Subnet: pfx("10.1.0.0/29"), Gateway: addr("10.1.0.6")},
			gateway: "10.1.0.6",
			want:    []string{"10.1.0.1", "10.1.0.2"},
			last:    "10.1.0.5", count: 5,
		},
		{
			name: "aux addresses are never handed out",
			cfg: Config{Subnet: pfx("10.2.0.0/24"), Aux: map[string]netip.Addr{
				"router": addr("10.2.0.2"), "nas": addr("10.2.0.4"), "far": addr("10.2.0.200"),
			}},
			gateway: "10.2.0.1",
			want:    []string{"10.2.0.3", "10.2.0.5", "10.2.0.6"},
			last:    "10.2.0.254", count: 250,
		},
		{
			name:    "ip-range at the start of the subnet",
			cfg:     Config{Subnet: pfx("192.168.57.0/24"), IPRange: pfx("192.168.57.0/25")},
			gateway: "192.168.57.1",
			want:    []string{"192.168.57.2", "192.168.57.3"},
			// Docker hands out the range's own last address (.127): only the subnet's
			// network and broadcast addresses are unusable.
			last: "192.168.57.127", count: 126,
		},
		{
			name:    "ip-range at the end of the subnet starts at its first address",
			cfg:     Config{Subnet: pfx("10.0.2.0/24"), IPRange: pfx("10.0.2.128/25")},
			gateway: "10.0.2.1",
			want:    []string{"10.0.2.128", "10.0.2.129"},
			last:    "10.0.2.254", count: 127,
		},
		{
			name:    "gateway inside a small ip-range",
			cfg:     Config{Subnet: pfx("10.0.2.0/24"), IPRange: pfx("10.0.2.8/30"), Gateway: addr("10.0.2.9")},
			gateway: "10.0.2.9",
			want:    []string{"10.0.2.8", "10.0.2.10", "10.0.2.11"},
			last:    "10.0.2.11", count: 3,
		},
		{
			name:    "/30 has room for one container",
			cfg:     Config{Subnet: pfx("10.9.0.0/30")},
			gateway: "10.9.0.1",
			want:    []string{"10.9.0.2"},
			last:    "10.9.0.2", count: 1,
		},
		{
			name:    "/29 has room for five containers",
			cfg:     Config{Subnet: pfx("10.9.0.8/29")},
			gateway: "10.9.0.9",
			want:    []string{"10.9.0.10", "10.9.0.11"},
			last:    "10.9.0.14", count: 5,
		},
		{
			name:    "4in6 gateway is accepted as IPv4",
			cfg:     Config{Subnet: pfx("10.3.0.0/24"), Gateway: addr("::ffff:10.3.0.254")},
			gateway: "10.3.0.254",
			want:    []string{"10.3.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPool(t, tt.cfg)
			if got := p.Gateway().String(); got != tt.gateway {
				t.Errorf("Gateway() = %s, want %s", got, tt.gateway)
			}
			if p.Subnet() != tt.cfg.Subnet || p.IPRange() != tt.cfg.IPRange {
				t.Errorf("Subnet/IPRange = %s/%s, want %s/%s", p.Subnet(), p.IPRange(), tt.cfg.Subnet, tt.cfg.IPRange)
			}
			var last netip.Addr
			for i, w := range tt.want {
				if last = mustAlloc(t, p); last != addr(w) {
					t.Fatalf("allocation %d = %s, want %s", i, last, w)
				}
			}
			if tt.last == "" {
				return
			}
			for p.Len() < tt.count {
				last = mustAlloc(t, p)
				if tt.cfg.IPRange.IsValid() && !tt.cfg.IPRange.Contains(last) {
					t.Fatalf("allocated %s outside --ip-range %s", last, tt.cfg.IPRange)
				}
				if last == p.Gateway() {
					t.Fatalf("allocated the gateway %s", last)
				}
				for name, aux := range tt.cfg.Aux {
					if last == aux {
						t.Fatalf("allocated aux address %s=%s", name, aux)
					}
				}
			}
			if last != addr(tt.last) {
				t.Errorf("last address = %s, want %s", last, tt.last)
			}
			a, err := p.Allocate()
			if !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("Allocate after %d = %v, %v; want ErrPoolExhausted", tt.count, a, err)
			}
			if !strings.Contains(err.Error(), "no available IPv4 addresses on this network's address pools") {
				t.Errorf("exhaustion message %q lacks Docker's wording", err)
			}
			if a.IsValid() {
				t.Errorf("Allocate returned %s with an error", a)
			}
		})
	}
}

func TestExhaustionMessageNamesRange(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("10.0.0.0/16"), IPRange: pfx("10.0.5.0/31")})
	mustAlloc(t, p)
	mustAlloc(t, p)
	_, err := p.Allocate()
	for _, want := range []string{"10.0.5.0/31", "10.0.0.0/16", "all 2 usable addresses", "larger --subnet or --ip-range"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	p = mustPool(t, Config{Subnet: pfx("10.9.0.0/30")})
	mustAlloc(t, p)
	if _, err := p.Allocate(); err == nil || !strings.Contains(err.Error(), "the only usable address of 10.9.0.0/30 is in use") {
		t.Errorf("error %q does not say the only address is taken", err)
	}
	p = mustPool(t, Config{Subnet: pfx("10.9.0.0/24"), IPRange: pfx("10.9.0.0/31")})
	if _, err := p.Allocate(); err == nil || !strings.Contains(err.Error(), "no address left for containers") {
		t.Errorf("error %q does not say the range is empty", err)
	}
}

func TestReleaseReusesLowest(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("172.18.0.0/16")})
	for range 6 { // .2 .. .7
		mustAlloc(t, p)
	}
	for _, a := range []string{"172.18.0.5", "172.18.0.3", "172.18.0.6"} {
		if err := p.Release(addr(a)); err != nil {
			t.Fatal(err)
		}
	}
	if p.Len() != 3 || p.Allocated(addr("172.18.0.3")) {
		t.Fatalf("after release: Len=%d, .3 allocated=%v", p.Len(), p.Allocated(addr("172.18.0.3")))
	}
	for _, want := range []string{"172.18.0.3", "172.18.0.5", "172.18.0.6", "172.18.0.8"} {
		if got := mustAlloc(t, p); got != addr(want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}

func TestReleaseErrors(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("10.5.0.0/24"), Aux: map[string]netip.Addr{"dns": addr("10.5.0.53")}})
	a := mustAlloc(t, p)
	if err := p.Release(a); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want error
		msg  string
	}{
		{a.String(), ErrNotAllocated, "cannot release 10.5.0.2"},
		{"10.5.0.77", ErrNotAllocated, "10.5.0.77"},
		{"10.5.0.1", ErrReserved, "gateway"},
		{"10.5.0.53", ErrReserved, `aux address "dns"`},
		{"10.5.0.0", ErrReserved, "network address"},
		{"10.5.0.255", ErrReserved, "broadcast"},
		{"10.6.0.1", ErrOutsideSubnet, "10.5.0.0/24"},
		{"fd00::1", ErrOutsideSubnet, "fd00::1"},
	}
	for _, tt := range tests {
		err := p.Release(addr(tt.addr))
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Release(%s) = %v; want %v mentioning %q", tt.addr, err, tt.want, tt.msg)
		}
	}
	if err := p.Release(netip.Addr{}); !errors.Is(err, ErrOutsideSubnet) {
		t.Errorf("Release(zero) = %v; want ErrOutsideSubnet", err)
	}
}

func TestAllocateStatic(t *testing.T) {
	cfg := Config{
		Subnet:  pfx("192.168.57.0/24"),
		IPRange: pfx("192.168.57.0/25"),
		Gateway: addr("192.168.57.1"),
		Aux:     map[string]netip.Addr{"printer": addr("192.168.57.200")},
	}
	tests := []struct {
		name string
		addr string
		want error  // nil = success
		msg  string // substring of the error
	}{
		{"inside ip-range", "192.168.57.10", nil, ""},
		{"outside ip-range but inside subnet", "192.168.57.150", nil, ""},
		{"4in6 form", "::ffff:192.168.57.11", nil, ""},
		{"outside subnet", "192.168.58.10", ErrOutsideSubnet, "192.168.58.10"},
		{"IPv6", "fd00::10", ErrOutsideSubnet, "192.168.57.0/24"},
		{"gateway", "192.168.57.1", ErrReserved, "gateway"},
		{"aux", "192.168.57.200", ErrReserved, "printer"},
		{"network address", "192.168.57.0", ErrReserved, "network address"},
		{"broadcast address", "192.168.57.255", ErrReserved, "broadcast"},
		{"in use", "192.168.57.2", ErrInUse, "192.168.57.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPool(t, cfg)
			mustAlloc(t, p) // .2
			err := p.AllocateStatic(addr(tt.addr))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("AllocateStatic(%s): %v", tt.addr, err)
				}
				if !p.Allocated(addr(tt.addr)) || p.Len() != 2 {
					t.Fatalf("after AllocateStatic(%s): Allocated=false or Len=%d", tt.addr, p.Len())
				}
				if err := p.AllocateStatic(addr(tt.addr)); !errors.Is(err, ErrInUse) {
					t.Fatalf("second AllocateStatic(%s) = %v, want ErrInUse", tt.addr, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("AllocateStatic(%s) = %v; want %v mentioning %q", tt.addr, err, tt.want, tt.msg)
			}
			if p.Len() != 1 {
				t.Fatalf("failed AllocateStatic changed Len to %d", p.Len())
			}
		})
	}
}

// A static address above the cursor must be skipped by dynamic allocation, and once released
// it must be handed out in order again.
func TestStaticAboveCursor(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("172.20.0.0/16")})
	for _, a := range []string{"172.20.0.3", "172.20.0.4", "172.20.0.6"} {
		if err := p.AllocateStatic(addr(a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"172.20.0.2", "172.20.0.5", "172.20.0.7"} {
		if got := mustAlloc(t, p); got != addr(want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if err := p.Release(addr("172.20.0.4")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, p); got != addr("172.20.0.4") {
		t.Fatalf("got %s, want the released 172.20.0.4", got)
	}
	// Static allocation of a released address below the cursor takes it out of the free set.
	if err := p.Release(addr("172.20.0.5")); err != nil {
		t.Fatal(err)
	}
	if err := p.AllocateStatic(addr("172.20.0.5")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, p); got != addr("172.20.0.8") {
		t.Fatalf("got %s, want 172.20.0.8", got)
	}
}

// Static addresses inside the ip-range count against its capacity; outside they do not.
func TestStaticCountsAgainstRange(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.4/30")})
	for _, a := range []string{"10.0.0.6", "10.0.0.100"} {
		if err := p.AllocateStatic(addr(a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"10.0.0.4", "10.0.0.5", "10.0.0.7"} {
		if got := mustAlloc(t, p); got != addr(want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("want ErrPoolExhausted, got %v", err)
	}
	if err := p.Release(addr("10.0.0.100")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("releasing outside the range freed room inside it: %v", err)
	}
	if err := p.Release(addr("10.0.0.6")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, p); got != addr("10.0.0.6") {
		t.Fatalf("got %s, want 10.0.0.6", got)
	}
}

func TestNewPoolErrors(t *testing.T) {
	sub := pfx("172.18.0.0/16")
	tests := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"no subnet", Config{}, "no subnet given"},
		{"IPv6 subnet over a /64", Config{Subnet: pfx("fd00::/48")}, "a /64 or longer"},
		{"IPv6 /127", Config{Subnet: pfx("fd00::/127")}, "use /126"},
		{"IPv4-mapped subnet", Config{Subnet: pfx("::ffff:10.0.0.0/120")}, "give it as IPv4"},
		{"IPv6 range in IPv4", Config{Subnet: pfx("fd00::/64"), IPRange: pfx("10.0.0.0/24")}, "not the family"},
		{"IPv6 gateway outside", Config{Subnet: pfx("fd00::/64"), Gateway: addr("fd01::1")}, "not inside subnet fd00::/64"},
		{"IPv6 gateway anycast", Config{Subnet: pfx("fd00::/64"), Gateway: addr("fd00::")}, "subnet-router anycast"},
		{"host bits", Config{Subnet: pfx("172.18.5.0/16")}, "invalid --subnet 172.18.5.0/16: host bits are set; did you mean 172.18.0.0/16?"},
		{"/31", Config{Subnet: pfx("10.0.0.0/31")}, "use /30"},
		{"/32", Config{Subnet: pfx("10.0.0.7/32")}, "too small"},
		{"range outside", Config{Subnet: sub, IPRange: pfx("10.1.0.0/24")}, "invalid --ip-range 10.1.0.0/24: not inside subnet 172.18.0.0/16"},
		{"range larger", Config{Subnet: sub, IPRange: pfx("172.16.0.0/12")}, "not inside subnet"},
		{"range host bits", Config{Subnet: sub, IPRange: pfx("172.18.1.5/24")}, "did you mean 172.18.1.0/24?"},
		{"range IPv6", Config{Subnet: sub, IPRange: pfx("fd00::/120")}, "invalid --ip-range fd00::/120"},
		{"gateway outside", Config{Subnet: sub, Gateway: addr("172.19.0.1")}, "invalid --gateway 172.19.0.1: not inside subnet 172.18.0.0/16"},
		{"gateway network", Config{Subnet: sub, Gateway: addr("172.18.0.0")}, "network address"},
		{"gateway broadcast", Config{Subnet: sub, Gateway: addr("172.18.255.255")}, "broadcast address"},
		{"gateway IPv6", Config{Subnet: sub, Gateway: addr("fd00::1")}, "invalid --gateway fd00::1"},
		{"aux outside", Config{Subnet: sub, Aux: map[string]netip.Addr{"a": addr("10.0.0.1")}}, "invalid --aux-address a=10.0.0.1: not inside subnet"},
		{"aux gateway", Config{Subnet: sub, Aux: map[string]netip.Addr{"a": addr("172.18.0.1")}}, "gateway"},
		{"aux broadcast", Config{Subnet: sub, Aux: map[string]netip.Addr{"a": addr("172.18.255.255")}}, "broadcast"},
		{"aux duplicate", Config{Subnet: sub, Aux: map[string]netip.Addr{"a": addr("172.18.0.9"), "b": addr("172.18.0.9")}}, `invalid --aux-address b=172.18.0.9: it is the aux address "a"`},
		{"aux empty name", Config{Subnet: sub, Aux: map[string]netip.Addr{"": addr("172.18.0.9")}}, "name is empty"},
		{"aux no address", Config{Subnet: sub, Aux: map[string]netip.Addr{"a": {}}}, "no address given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPool(tt.cfg)
			if err == nil {
				t.Fatalf("NewPool succeeded: subnet %s", p.Subnet())
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
}

// An ip-range with no usable address is accepted (static addresses can still be used, as in
// Docker) but Allocate reports exhaustion straight away.
func TestEmptyRange(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("10.0.0.0/24"), IPRange: pfx("10.0.0.0/32")})
	if _, err := p.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("want ErrPoolExhausted, got %v", err)
	}
	if err := p.AllocateStatic(addr("10.0.0.20")); err != nil {
		t.Fatal(err)
	}
}

// The largest possible subnet must not overflow the arithmetic at either end.
func TestWholeAddressSpace(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("0.0.0.0/0"), IPRange: pfx("255.255.255.252/30")})
	if got := mustAlloc(t, p); got != addr("255.255.255.252") {
		t.Fatalf("got %s", got)
	}
	mustAlloc(t, p)
	mustAlloc(t, p)
	if _, err := p.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("want ErrPoolExhausted (255.255.255.255 is the broadcast), got %v", err)
	}
}
