package ipam

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultPools(t *testing.T) {
	pools := DefaultPools()
	if len(pools) != 31 {
		t.Fatalf("%d default pools, want 31 (15 x 172.x/16 + 16 x 192.168.x/20)", len(pools))
	}
	want := map[int]string{
		0:  "172.17.0.0/16",
		1:  "172.18.0.0/16",
		14: "172.31.0.0/16",
		15: "192.168.0.0/20",
		16: "192.168.16.0/20",
		30: "192.168.240.0/20",
	}
	for i, w := range want {
		if pools[i] != pfx(w) {
			t.Errorf("pool %d = %s, want %s", i, pools[i], w)
		}
	}
	for i, p := range pools {
		if p != p.Masked() {
			t.Errorf("pool %d %s is not canonical", i, p)
		}
		for _, q := range pools[i+1:] {
			if Overlaps(p, q) {
				t.Errorf("default pools %s and %s overlap", p, q)
			}
		}
	}
	pools[0] = pfx("10.0.0.0/8")
	if DefaultPools()[0] != pfx("172.17.0.0/16") {
		t.Error("modifying the returned slice changed the defaults")
	}
}

func TestPickDefault(t *testing.T) {
	all172 := func(extra ...string) []netip.Prefix {
		in := DefaultPools()[:15]
		for _, e := range extra {
			in = append(in, pfx(e))
		}
		return in
	}
	tests := []struct {
		name  string
		inUse []netip.Prefix
		want  string // "" = ErrNoDefaultPool
	}{
		{"nothing in use", nil, "172.17.0.0/16"},
		{"default route is ignored", []netip.Prefix{pfx("0.0.0.0/0")}, "172.17.0.0/16"},
		{"bridge network exists", []netip.Prefix{pfx("172.17.0.0/16")}, "172.18.0.0/16"},
		{"host route inside 172.17", []netip.Prefix{pfx("172.17.5.0/24")}, "172.18.0.0/16"},
		{"host address with prefix length", []netip.Prefix{pfx("172.17.0.1/16"), pfx("172.18.3.4/24")}, "172.19.0.0/16"},
		{"host route covering 172.16/12", []netip.Prefix{pfx("172.16.0.0/12")}, "192.168.0.0/20"},
		{"unrelated routes", []netip.Prefix{pfx("10.0.0.0/8"), pfx("192.168.1.0/24")}, "172.17.0.0/16"},
		{"IPv6 routes never overlap", []netip.Prefix{pfx("::/0"), pfx("fd00::/8")}, "172.17.0.0/16"},
		{"all 172 used", all172(), "192.168.0.0/20"},
		{"all 172 used, home LAN 192.168.1.0/24", all172("192.168.1.0/24"), "192.168.16.0/20"},
		{"everything used", all172("192.168.0.0/16"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PickDefault(tt.inUse)
			if tt.want == "" {
				if !errors.Is(err, ErrNoDefaultPool) || got.IsValid() {
					t.Fatalf("PickDefault = %s, %v; want ErrNoDefaultPool", got, err)
				}
				if err.Error() != "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network" {
					t.Errorf("message %q is not Docker's", err)
				}
				return
			}
			if err != nil || got != pfx(tt.want) {
				t.Fatalf("PickDefault = %s, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"172.17.0.0/16", "172.17.0.0/16", true},
		{"172.17.0.0/16", "172.17.5.0/24", true},
		{"172.17.5.0/24", "172.17.0.0/16", true},
		{"172.16.0.0/12", "172.31.0.0/16", true},
		{"172.17.0.0/16", "172.18.0.0/16", false},
		{"192.168.0.0/20", "192.168.16.0/20", false},
		{"192.168.15.255/32", "192.168.0.0/20", true},
		{"172.17.0.1/16", "172.17.200.0/24", true}, // host bits ignored
		{"10.0.0.0/8", "fd00::/8", false},
		{"0.0.0.0/0", "10.0.0.0/8", true},
	}
	for _, tt := range tests {
		if got := Overlaps(pfx(tt.a), pfx(tt.b)); got != tt.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	if Overlaps(netip.Prefix{}, pfx("10.0.0.0/8")) || Overlaps(pfx("10.0.0.0/8"), netip.Prefix{}) {
		t.Error("an invalid prefix overlaps")
	}
}

func TestCheckOverlap(t *testing.T) {
	existing := []netip.Prefix{pfx("172.17.0.0/16"), pfx("10.10.0.0/16")}
	if err := CheckOverlap(pfx("172.18.0.0/16"), existing); err != nil {
		t.Fatalf("CheckOverlap: %v", err)
	}
	if err := CheckOverlap(pfx("172.18.0.0/16"), nil); err != nil {
		t.Fatalf("CheckOverlap(nil): %v", err)
	}
	err := CheckOverlap(pfx("10.10.128.0/17"), existing)
	if !errors.Is(err, ErrOverlap) {
		t.Fatalf("CheckOverlap = %v, want ErrOverlap", err)
	}
	for _, want := range []string{"Pool overlaps with other one on this address space", "10.10.128.0/17", "10.10.0.0/16"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestMACFromIP(t *testing.T) {
	tests := []struct{ ip, mac string }{
		{"172.17.0.2", "02:42:ac:11:00:02"},
		{"172.18.0.3", "02:42:ac:12:00:03"},
		{"192.168.57.255", "02:42:c0:a8:39:ff"},
		{"::ffff:10.0.0.1", "02:42:0a:00:00:01"},
	}
	for _, tt := range tests {
		if got := MACFromIP(addr(tt.ip)).String(); got != tt.mac {
			t.Errorf("MACFromIP(%s) = %s, want %s", tt.ip, got, tt.mac)
		}
	}
	if m := MACFromIP(addr("fd00::2")); m != nil {
		t.Errorf("MACFromIP(IPv6) = %s, want nil", m)
	}
	if m := MACFromIP(netip.Addr{}); m != nil {
		t.Errorf("MACFromIP(zero) = %s, want nil", m)
	}
}
