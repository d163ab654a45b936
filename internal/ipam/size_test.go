package ipam

import (
	"errors"
	"net/netip"
	"runtime"
	"testing"
)

// bytesPerRun returns the heap bytes f allocates per call, averaged over runs. Unlike
// testing.AllocsPerRun, which counts allocations, this catches one big allocation (a bitmap)
// that would be a single malloc either way.
func bytesPerRun(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// Opening a /8 must cost what a /24 costs: nothing in a Pool may be sized by its subnet.
func TestNewPoolCostIndependentOfSize(t *testing.T) {
	newPool := func(subnet, ipRange string) func() {
		c := Config{Subnet: pfx(subnet), Aux: map[string]netip.Addr{"x": addr("10.0.0.9")}}
		if ipRange != "" {
			c.IPRange = pfx(ipRange)
		}
		return func() {
			if _, err := NewPool(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	small, big := newPool("10.0.0.0/24", ""), newPool("10.0.0.0/8", "")
	bigRange := newPool("10.0.0.0/8", "10.128.0.0/9")

	allocsSmall := testing.AllocsPerRun(100, small)
	for name, f := range map[string]func(){"/8": big, "/8 with /9 ip-range": bigRange} {
		if a := testing.AllocsPerRun(100, f); a != allocsSmall {
			t.Errorf("NewPool %s: %v allocations, /24: %v", name, a, allocsSmall)
		}
	}
	bytesSmall, bytesBig := bytesPerRun(100, small), bytesPerRun(100, big)
	// Equal in practice; the slack absorbs allocations by the runtime or test framework.
	if bytesBig > bytesSmall+256 {
		t.Errorf("NewPool /8 allocates %d bytes, /24 %d", bytesBig, bytesSmall)
	}
	t.Logf("NewPool: %v allocs, %d bytes (/24), %d bytes (/8)", allocsSmall, bytesSmall, bytesBig)
}

// A /8 pool with 1000 containers holds about 1000 addresses' worth of memory: a bitmap of
// the /8 alone would be 2 MiB, a slice of its addresses 64 MiB.
func TestBigPoolMemory(t *testing.T) {
	var p *Pool
	perRun := bytesPerRun(3, func() {
		p = mustPool(t, Config{Subnet: pfx("10.0.0.0/8")})
		for i := range 1000 {
			a := mustAlloc(t, p)
			if want := fromU32(0x0a000002 + uint32(i)); a != want {
				t.Fatalf("allocation %d = %s, want %s", i, a, want)
			}
		}
	})
	if perRun > 256<<10 {
		t.Errorf("NewPool(/8) + 1000 allocations allocate %d bytes; want well under 256 KiB", perRun)
	}
	t.Logf("NewPool(/8) + 1000 allocations: %d bytes", perRun)

	// Release and reuse, and static addresses far away, stay cheap too.
	for i := 0; i < 1000; i += 2 {
		if err := p.Release(fromU32(0x0a000002 + uint32(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.AllocateStatic(addr("10.255.255.254")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, p); got != addr("10.0.0.2") {
		t.Fatalf("got %s, want 10.0.0.2", got)
	}
	if p.Len() != 502 {
		t.Fatalf("Len = %d, want 502", p.Len())
	}
}

// Exhaustion is found by counting, not by scanning: with a /16 filled entirely by static
// addresses, Allocate fails without the cursor moving at all. Once one is released, the
// cursor skips each taken address once and then never again.
func TestExhaustionWithoutScan(t *testing.T) {
	p := mustPool(t, Config{Subnet: pfx("10.0.0.0/8"), IPRange: pfx("10.7.0.0/16")})
	for x := uint32(0x0a070000); x <= 0x0a07ffff; x++ {
		if err := p.AllocateStatic(fromU32(x)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("want ErrPoolExhausted, got %v", err)
	}
	if p.cursor != p.lo {
		t.Fatalf("exhaustion moved the cursor from %s to %s: it scanned", p.addrAt(p.lo), p.addrAt(p.cursor))
	}
	if err := p.Release(addr("10.7.255.200")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, p); got != addr("10.7.255.200") {
		t.Fatalf("got %s, want 10.7.255.200", got)
	}
	if err := p.Release(addr("10.7.0.9")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, p); got != addr("10.7.0.9") {
		t.Fatalf("got %s, want 10.7.0.9 from the free heap", got)
	}
	if _, err := p.Allocate(); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("want ErrPoolExhausted, got %v", err)
	}
}
