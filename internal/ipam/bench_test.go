package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkAllocateRelease measures the container start/stop path on a /16 that already has
// 1000 containers: "same" gives back the address it just took (the free heap holds one
// element), "churn" releases the oldest address each time so the free heap and the cursor
// both keep moving.
func BenchmarkAllocateRelease(b *testing.B) {
	setup := func(b *testing.B) (*Pool, []uint32) {
		p := mustPool(b, Config{Subnet: pfx("172.18.0.0/16")})
		live := make([]uint32, 1000)
		for i := range live {
			live[i] = toU32(mustAlloc(b, p))
		}
		return p, live
	}
	b.Run("same", func(b *testing.B) {
		p, _ := setup(b)
		b.ReportAllocs()
		for b.Loop() {
			a, err := p.Allocate()
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Release(a); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("churn", func(b *testing.B) {
		p, live := setup(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := p.Release(fromU32(live[i])); err != nil {
				b.Fatal(err)
			}
			a, err := p.Allocate()
			if err != nil {
				b.Fatal(err)
			}
			live[i] = toU32(a)
			i = (i + 1) % len(live)
		}
	})
}

// BenchmarkAllocate hands out b.N addresses from a /8; if b.N exceeds the /8 a fresh pool is
// opened (outside the timer).
func BenchmarkAllocate(b *testing.B) {
	p := mustPool(b, Config{Subnet: pfx("10.0.0.0/8")})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := p.Allocate(); err != nil {
			if !errors.Is(err, ErrPoolExhausted) {
				b.Fatal(err)
			}
			b.StopTimer()
			p = mustPool(b, Config{Subnet: pfx("10.0.0.0/8")})
			b.StartTimer()
		}
	}
}

// BenchmarkNewPool shows that opening a pool costs the same whatever its size.
func BenchmarkNewPool(b *testing.B) {
	for _, bits := range []int{8, 24} {
		c := Config{Subnet: netip.PrefixFrom(addr("10.0.0.0"), bits)}
		b.Run(fmt.Sprintf("bits=%d", bits), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewPool(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
