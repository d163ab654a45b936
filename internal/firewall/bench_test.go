package firewall

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/cnet-dev/cnet/internal/portmap"
)

// Benchmarks run in a throwaway namespace like the tests:
//
//	sudo go test -run XXX -bench . -benchmem ./internal/firewall/

func benchbed(b *testing.B) *testbed {
	tb := newTestbed(b)
	tb.network(netA)
	return tb
}

func rangeOf(b *testing.B, first, n int) []portmap.Mapping {
	ms, err := portmap.ParseSpec(fmt.Sprintf("%d-%d:%d-%d", first, first+n-1, first, first+n-1))
	if err != nil {
		b.Fatal(err)
	}
	return ms
}

// BenchmarkAddPorts1000 publishes a 1000-port range: one transaction (Docker 20.10 takes 33 s
// and 2000 processes for this). The removal after each is not timed.
func BenchmarkAddPorts1000(b *testing.B) {
	tb := benchbed(b)
	ms := rangeOf(b, 20000, 1000)
	c := netip.MustParseAddr("172.30.0.2")
	b.ReportAllocs()
	for b.Loop() {
		if err := tb.fw.AddPorts("br-a", c, ms); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := tb.fw.RemovePorts("br-a", c, ms); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkRemovePorts1000 unpublishes a 1000-port range in one transaction.
func BenchmarkRemovePorts1000(b *testing.B) {
	tb := benchbed(b)
	ms := rangeOf(b, 20000, 1000)
	c := netip.MustParseAddr("172.30.0.2")
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := tb.fw.AddPorts("br-a", c, ms); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := tb.fw.RemovePorts("br-a", c, ms); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddPort publishes one port (add timed, removal not) with 1,000 and 10,000 ports
// already published across 100 containers: the time per port stays the same, since a port is
// one element of a hash map and no rule is added.
func BenchmarkAddPort(b *testing.B) {
	for _, present := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("present=%d", present), func(b *testing.B) {
			tb := benchbed(b)
			per := present / 100
			for i := range 100 {
				c := netip.AddrFrom4([4]byte{172, 30, 1, byte(i + 2)})
				if err := tb.fw.AddPorts("br-a", c, rangeOf(b, 10000+i*per, per)); err != nil {
					b.Fatal(err)
				}
			}
			if n := len(tb.current().Ports); n != present {
				b.Fatalf("%d ports present, want %d", n, present)
			}
			m := rangeOf(b, 5000, 1)
			c := netip.MustParseAddr("172.30.0.2")
			b.ReportAllocs()
			for b.Loop() {
				if err := tb.fw.AddPorts("br-a", c, m); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := tb.fw.RemovePorts("br-a", c, m); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
