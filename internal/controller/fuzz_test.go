package controller

import (
	"testing"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// FuzzParsePool feeds --subnet/--ip-range/--gateway/--aux-address strings to the pool parser:
// it never panics, refuses with a bad-input error, or returns a pool whose parts are inside
// its subnet.
func FuzzParsePool(f *testing.F) {
	for _, s := range [][4]string{
		{"172.18.0.0/16", "", "", ""},
		{"10.0.2.0/24", "10.0.2.128/25", "10.0.2.1", "10.0.2.200"},
		{"192.168.57.0/24", "192.168.57.0/24", "192.168.57.1", ""},
		{"10.0.0.0/33", "", "", ""},
		{"::1/128", "", "", ""},
		{"10.1.0.0/30", "10.1.0.0/31", "10.1.0.3", "10.1.0.1"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, subnet, ipRange, gateway, aux string) {
		r := PoolRequest{Subnet: subnet, IPRange: ipRange, Gateway: gateway}
		if aux != "" {
			r.Aux = map[string]string{"a": aux}
		}
		p, err := parsePool(r)
		if err != nil {
			if !errdefs.Is(err, errdefs.KindInvalid) {
				t.Fatalf("%+v: error of kind %v, want bad input: %v", r, errdefs.KindOf(err), err)
			}
			return
		}
		if p.IPRange.IsValid() && !p.Subnet.Contains(p.IPRange.Addr()) {
			t.Fatalf("%+v: ip-range %s outside subnet %s", r, p.IPRange, p.Subnet)
		}
		if p.Gateway.IsValid() && !p.Subnet.Contains(p.Gateway) {
			t.Fatalf("%+v: gateway %s outside subnet %s", r, p.Gateway, p.Subnet)
		}
		for _, a := range p.Aux {
			if !p.Subnet.Contains(a) {
				t.Fatalf("%+v: aux %s outside subnet %s", r, a, p.Subnet)
			}
		}
	})
}
