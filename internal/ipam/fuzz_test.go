package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

// model is the obviously-correct reference the fuzzer checks Pool against: it scans the
// whole (small) range for every decision.
type model struct {
	network, broadcast uint32 // broadcast: the subnet's last address, reserved only for IPv4
	lo, hi             uint32 // the ip-range, or the subnet
	reserved           map[uint32]bool
	allocated          map[uint32]bool
	v6                 bool // addresses are fd00::/96 + the number
}

// at is the address the model numbers x.
func (m *model) at(x uint32) netip.Addr {
	if !m.v6 {
		return fromU32(x)
	}
	b := [16]byte{0: 0xfd}
	b[12], b[13], b[14], b[15] = byte(x>>24), byte(x>>16), byte(x>>8), byte(x)
	return netip.AddrFrom16(b)
}

func (m *model) inSubnet(x uint32) bool { return x >= m.network && x <= m.broadcast }

func (m *model) isReserved(x uint32) bool {
	return x == m.network || (x == m.broadcast && !m.v6) || m.reserved[x]
}

func (m *model) lowestFree() (uint32, bool) {
	for x := m.lo; x <= m.hi; x++ {
		if !m.isReserved(x) && !m.allocated[x] {
			return x, true
		}
	}
	return 0, false
}

// fuzzConfig turns setup into a valid Config on a small subnet (/27 to /30, or IPv6 /123 to
// /126), with or without an ip-range, gateway and aux addresses, and the matching model.
func fuzzConfig(setup uint32, v6 bool) (Config, *model) {
	const base = 0x0a000100 // 10.0.1.0, or fd00::a00:100
	width := 32
	if v6 {
		width = 128
	}
	bits := 27 + int(setup%4)
	size := uint32(1) << (32 - bits)
	m := &model{
		network: base, broadcast: base + size - 1,
		lo: base, hi: base + size - 1,
		reserved: map[uint32]bool{}, allocated: map[uint32]bool{}, v6: v6,
	}
	c := Config{Subnet: netip.PrefixFrom(m.at(base), width-32+bits)}

	if k := min((setup>>2)%4, uint32(32-bits)); k != 0 {
		rsize := size >> k
		idx := (setup >> 4) % (1 << k)
		m.lo = base + idx*rsize
		m.hi = m.lo + rsize - 1
		c.IPRange = netip.PrefixFrom(m.at(m.lo), width-32+bits+int(k))
	}
	host := func(v uint32) uint32 { return base + 1 + v%(size-2) }
	gw := uint32(base + 1)
	if v := (setup >> 8) & 0xff; v != 0 {
		gw = host(v)
		c.Gateway = m.at(gw)
	}
	m.reserved[gw] = true
	for i, shift := range []uint32{16, 24} {
		v := (setup >> shift) & 0xff
		if v == 0 {
			continue
		}
		a := host(v)
		if m.reserved[a] {
			continue
		}
		if c.Aux == nil {
			c.Aux = map[string]netip.Addr{}
		}
		c.Aux[string(rune('a'+i))] = m.at(a)
		m.reserved[a] = true
	}
	return c, m
}

// checkInvariants verifies the internal bookkeeping that makes Allocate cheap.
func checkInvariants(t *testing.T, p *Pool) {
	t.Helper()
	h := &p.free
	if len(h.a) != len(h.pos) {
		t.Fatalf("heap has %d elements, index has %d", len(h.a), len(h.pos))
	}
	for i, x := range h.a {
		if h.pos[x] != i {
			t.Fatalf("heap index of %s is %d, element at %d", p.addrAt(x), h.pos[x], i)
		}
		if i > 0 && h.a[(i-1)/2] > x {
			t.Fatalf("heap order broken at %d", i)
		}
		if x >= p.cursor || p.taken(x) || !p.inRange(x) {
			t.Fatalf("free heap holds %s (cursor %s, taken %v)", p.addrAt(x), p.addrAt(p.cursor), p.taken(x))
		}
	}
	var used uint64
	for x := range p.allocated {
		if p.inRange(x) {
			used++
		}
	}
	if used != p.used || p.used > p.capacity {
		t.Fatalf("used = %d, counted %d, capacity %d", p.used, used, p.capacity)
	}
}

// FuzzPool drives random Allocate / AllocateStatic / Release sequences on small pools and
// compares every answer with the model: never a duplicate, never a reserved address, always
// the lowest free one, exhaustion exactly when the model has no free address.
func FuzzPool(f *testing.F) {
	f.Add(uint32(0), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(1), []byte{0, 0, 2, 9, 0, 0, 3, 6, 0, 0, 1, 0, 3, 6, 0, 0})
	f.Add(uint32(0x05060714), []byte{2, 20, 0, 0, 3, 5, 2, 5, 0, 0, 0, 0, 3, 7, 0, 0})
	f.Add(uint32(0xfffffff3), []byte{2, 1, 2, 3, 3, 2, 2, 39, 3, 40, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint32(0x0000002d), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 14, 0, 0, 2, 35, 2, 4, 0, 0})
	f.Fuzz(func(t *testing.T, setup uint32, ops []byte) {
		fuzzPool(t, setup, ops, false)
		fuzzPool(t, setup, ops, true)
	})
}

func fuzzPool(t *testing.T, setup uint32, ops []byte, v6 bool) {
	t.Helper()
	c, m := fuzzConfig(setup, v6)
	p, err := NewPool(c)
	if err != nil {
		t.Fatalf("NewPool(%+v): %v", c, err)
	}
	size := m.broadcast - m.network + 1
	for i := 0; i+1 < len(ops); i += 2 {
		// Addresses up to 4 below and 4 above the subnet, to hit the boundaries.
		x := m.network - 4 + uint32(ops[i+1])%(size+8)
		a := m.at(x)
		switch ops[i] % 4 {
		case 0, 1:
			got, err := p.Allocate()
			want, ok := m.lowestFree()
			if !ok {
				if !errors.Is(err, ErrPoolExhausted) {
					t.Fatalf("op %d: Allocate = %s, %v; model is exhausted", i, got, err)
				}
				break
			}
			if err != nil || got != m.at(want) {
				t.Fatalf("op %d: Allocate = %s, %v; want %s", i, got, err, m.at(want))
			}
			m.allocated[want] = true
		case 2:
			err := p.AllocateStatic(a)
			var want error
			switch {
			case !m.inSubnet(x):
				want = ErrOutsideSubnet
			case m.isReserved(x):
				want = ErrReserved
			case m.allocated[x]:
				want = ErrInUse
			}
			if !errors.Is(err, want) { // errors.Is(err, nil) means err == nil
				t.Fatalf("op %d: AllocateStatic(%s) = %v, want %v", i, a, err, want)
			}
			if err == nil {
				m.allocated[x] = true
			}
		case 3:
			err := p.Release(a)
			var want error
			switch {
			case !m.inSubnet(x):
				want = ErrOutsideSubnet
			case m.isReserved(x):
				want = ErrReserved
			case !m.allocated[x]:
				want = ErrNotAllocated
			}
			if !errors.Is(err, want) { // errors.Is(err, nil) means err == nil
				t.Fatalf("op %d: Release(%s) = %v, want %v", i, a, err, want)
			}
			delete(m.allocated, x)
		}
		if p.Len() != len(m.allocated) {
			t.Fatalf("op %d: Len = %d, model %d", i, p.Len(), len(m.allocated))
		}
		for y := m.network - 4; y <= m.broadcast+4; y++ {
			if p.Allocated(m.at(y)) != m.allocated[y] {
				t.Fatalf("op %d: Allocated(%s) = %v, model %v", i, m.at(y), !m.allocated[y], m.allocated[y])
			}
		}
		checkInvariants(t, p)
	}
}
