// Package ipam manages the addresses of cnet networks: one Pool per subnet hands out container
// addresses the way Docker 20.10's default IPAM driver does (lowest free address first,
// gateway and aux addresses reserved), and the package-level helpers pick a default subnet for
// a network created without --subnet. A Pool holds IPv4 or IPv6 addresses (a /64 or longer).
//
// It is pure Go and touches no kernel state, so all of it is unit-tested without root.
// Costs do not depend on the size of a subnet: a /8 network costs the same to create as a
// /24, and memory grows only with the number of addresses actually handed out.
package ipam

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Config describes one network's pool as the user gave it; zero values mean "default".
type Config struct {
	Subnet  netip.Prefix          // required, canonical (no host bits set); IPv4, or IPv6 of /64 or longer
	IPRange netip.Prefix          // optional; containers' dynamic addresses come from here
	Gateway netip.Addr            // optional; defaults to the first address after the network address
	Aux     map[string]netip.Addr // optional; --aux-address name=ip, never handed to containers
}

// Pool is the address bookkeeping of one network.
//
// A Pool is not safe for concurrent use: the controller already serialises the operations on
// one network (an endpoint's address, veth and firewall rules change together), and a lock
// here would only hide ordering bugs there.
//
// Dynamic allocation hands out the lowest free address, as Docker does, without a bitmap over
// the range: addresses at or above cursor have never been handed out dynamically (only the
// ones in allocated or reserved are taken), and every free address below cursor sits in a
// min-heap. The cursor only moves forward, and it skips only taken addresses, so the total
// skipping work is bounded by the number of allocations, never by the size of the range.
type Pool struct {
	subnet  netip.Prefix
	ipRange netip.Prefix
	gateway netip.Addr

	// Addresses are kept as offsets from the subnet's first address (offset 0, the network
	// address; for IPv6 the subnet-router anycast address, never given to a container). last
	// is the highest offset: IPv4's broadcast address, which is never given either, or the
	// last address of an IPv6 subnet, capped at 2^64-2 so that last+1 cannot wrap (an IPv6
	// /64 thus leaves out its all-ones interface ID).
	last uint64
	// base4 is an IPv4 subnet's first address as a number: offsets of IPv4 addresses, on the
	// container start path, are plain 32-bit arithmetic.
	base4 uint32
	// lo and hi bound dynamic allocation (inclusive): the ip-range, or the subnet, without
	// the unusable offsets. hi < lo is an empty range.
	lo, hi uint64
	cursor uint64

	reserved  map[uint64]string // gateway ("") and aux addresses (their name)
	allocated map[uint64]struct{}
	free      freeHeap

	// capacity is the number of addresses Allocate may ever hand out (the range minus the
	// reserved addresses in it); used counts allocated addresses inside [lo, hi]. Together
	// they detect exhaustion without looking at the range.
	capacity, used uint64
}

// NewPool validates c and returns an empty pool. Every validation error names the flag and
// value at fault and matches ErrInvalidConfig.
func NewPool(c Config) (*Pool, error) {
	if err := checkSubnet(c.Subnet); err != nil {
		return nil, err
	}
	p := &Pool{
		subnet:    c.Subnet,
		reserved:  make(map[uint64]string, 1+len(c.Aux)),
		allocated: make(map[uint64]struct{}),
	}
	p.last = spanOf(c.Subnet.Bits(), c.Subnet.Addr().BitLen())
	if a := c.Subnet.Addr(); a.Is4() {
		b := a.As4()
		p.base4 = binary.BigEndian.Uint32(b[:])
	}

	lo, hi := uint64(0), p.last
	if c.IPRange.IsValid() {
		if err := p.checkRange(c.IPRange); err != nil {
			return nil, err
		}
		p.ipRange = c.IPRange
		lo = p.offset(c.IPRange.Addr())
		hi = lo + spanOf(c.IPRange.Bits(), c.IPRange.Addr().BitLen())
	}
	// An ip-range may start at the subnet's network address or end at its broadcast address
	// (10.0.2.128/25 in 10.0.2.0/24); those are never usable, the range's own first and last
	// addresses are, as in Docker. IPv6 has no broadcast address: its last offset is usable.
	top := p.last
	if !p.v6() {
		top = p.last - 1
	}
	p.lo, p.hi = max(lo, 1), min(hi, top)
	p.cursor = p.lo

	gw, err := p.checkGateway(c.Gateway)
	if err != nil {
		return nil, err
	}
	p.gateway = gw
	p.reserved[p.offset(gw)] = ""

	if err := p.reserveAux(c.Aux); err != nil {
		return nil, err
	}

	if p.hi >= p.lo {
		p.capacity = p.hi - p.lo + 1
	}
	for r := range p.reserved {
		if p.inRange(r) {
			p.capacity--
		}
	}
	return p, nil
}

func checkSubnet(s netip.Prefix) error {
	switch {
	case !s.IsValid():
		return invalidf("invalid --subnet: no subnet given (pick one with PickDefault)")
	case s.Addr().Is4In6():
		return invalidf("invalid --subnet %s: an IPv4-mapped IPv6 subnet; give it as IPv4", s)
	case s != s.Masked():
		return invalidf("invalid --subnet %s: host bits are set; did you mean %s?", s, s.Masked())
	case s.Addr().Is4() && s.Bits() > 30:
		return invalidf("invalid --subnet %s: too small; it needs a network, gateway, broadcast and at least one container address, so use /30 or a shorter prefix", s)
	case s.Addr().Is6() && s.Bits() < 64:
		return invalidf("invalid --subnet %s: an IPv6 subnet of cnet's is a /64 or longer (SLAAC's size; a host's /48 holds 65536 of them)", s)
	case s.Addr().Is6() && s.Bits() > 126:
		return invalidf("invalid --subnet %s: too small; it needs a gateway and at least one container address, so use /126 or a shorter prefix", s)
	}
	return nil
}

func (p *Pool) checkRange(r netip.Prefix) error {
	switch {
	case r.Addr().BitLen() != p.subnet.Addr().BitLen():
		return invalidf("invalid --ip-range %s: not the family of subnet %s", r, p.subnet)
	case r != r.Masked():
		return invalidf("invalid --ip-range %s: host bits are set; did you mean %s?", r, r.Masked())
	case r.Bits() < p.subnet.Bits() || !p.subnet.Contains(r.Addr()):
		return invalidf("invalid --ip-range %s: not inside subnet %s", r, p.subnet)
	}
	return nil
}

// checkGateway returns the gateway to use: g, or the subnet's first host address if g is
// unset. The gateway may lie outside the ip-range, as in Docker.
func (p *Pool) checkGateway(g netip.Addr) (netip.Addr, error) {
	if !g.IsValid() {
		return p.addrAt(1), nil
	}
	g = g.Unmap()
	if why := p.unusable(g); why != "" {
		return netip.Addr{}, invalidf("invalid --gateway %s: %s", g, why)
	}
	return g, nil
}

func (p *Pool) reserveAux(aux map[string]netip.Addr) error {
	// Sorted so that, with several bad entries, the same one is reported every time.
	for _, name := range slices.Sorted(maps.Keys(aux)) {
		a := aux[name].Unmap()
		switch {
		case name == "":
			return invalidf("invalid --aux-address =%s: the name is empty; use name=ip", a)
		case !a.IsValid():
			return invalidf("invalid --aux-address %s: no address given; use %s=ip", name, name)
		}
		if why := p.unusable(a); why != "" {
			return invalidf("invalid --aux-address %s=%s: %s", name, a, why)
		}
		if other, taken := p.reserved[p.offset(a)]; taken {
			return invalidf("invalid --aux-address %s=%s: %s", name, a, reservedWhy(other))
		}
		p.reserved[p.offset(a)] = name
	}
	return nil
}

// unusable says why a cannot be a gateway or aux address, or "" if it can.
func (p *Pool) unusable(a netip.Addr) string {
	if !p.subnet.Contains(a) {
		return fmt.Sprintf("not inside subnet %s", p.subnet)
	}
	return p.unusableOffset(p.offset(a))
}

// unusableOffset says why offset x is never anybody's address, or "".
func (p *Pool) unusableOffset(x uint64) string {
	switch {
	case x == 0 && p.v6():
		return fmt.Sprintf("it is the subnet-router anycast address of %s", p.subnet)
	case x == 0:
		return fmt.Sprintf("it is the network address of %s", p.subnet)
	case x == p.last && !p.v6():
		return fmt.Sprintf("it is the broadcast address of %s", p.subnet)
	case x > p.last:
		return fmt.Sprintf("it is the all-ones interface ID of %s, which cnet leaves out", p.subnet)
	}
	return ""
}

// Subnet returns the network's subnet.
func (p *Pool) Subnet() netip.Prefix { return p.subnet }

// IPRange returns the --ip-range, or the zero Prefix when containers draw from the whole
// subnet.
func (p *Pool) IPRange() netip.Prefix { return p.ipRange }

// Gateway returns the gateway address, given or defaulted.
func (p *Pool) Gateway() netip.Addr { return p.gateway }

// Len returns the number of addresses held by containers (reserved ones not counted).
func (p *Pool) Len() int { return len(p.allocated) }

// Allocated reports whether a container holds a. Reserved addresses (gateway, aux) are not
// allocated: they belong to the network.
func (p *Pool) Allocated(a netip.Addr) bool {
	a = a.Unmap()
	if !p.subnet.Contains(a) {
		return false
	}
	_, ok := p.allocated[p.offset(a)]
	return ok
}

// Allocate hands out the lowest free address of the ip-range (or of the subnet), so that
// containers get .2, .3, .4 ... and a released address is reused before a higher one, as
// with Docker.
func (p *Pool) Allocate() (netip.Addr, error) {
	if p.used >= p.capacity {
		return netip.Addr{}, p.exhausted()
	}
	var x uint64
	if p.free.Len() > 0 {
		x = p.free.popMin()
	} else {
		// capacity > used guarantees a free address at or above the cursor, and every
		// address the loop skips is taken, so it runs at most len(allocated)+len(reserved)
		// times over the pool's lifetime.
		for p.taken(p.cursor) {
			p.cursor++
		}
		x = p.cursor
		p.cursor++
	}
	p.allocated[x] = struct{}{}
	p.used++
	return p.addrAt(x), nil
}

func (p *Pool) exhausted() error {
	where := p.subnet.String()
	if p.ipRange.IsValid() {
		where = fmt.Sprintf("--ip-range %s of %s", p.ipRange, p.subnet)
	}
	const larger = "create the network with a larger --subnet or --ip-range"
	switch p.capacity {
	case 0:
		return fmt.Errorf("%w: %s has no address left for containers once the gateway and aux addresses are reserved; use --ip, or %s",
			ErrPoolExhausted, where, larger)
	case 1:
		return fmt.Errorf("%w: the only usable address of %s is in use; disconnect a container or %s", ErrPoolExhausted, where, larger)
	}
	return fmt.Errorf("%w: all %d usable addresses of %s are in use; disconnect a container or %s", ErrPoolExhausted, p.capacity, where, larger)
}

// AllocateStatic gives a container the address it asked for (--ip). The address may lie
// outside the ip-range, as Docker allows, but must be in the subnet and not reserved.
func (p *Pool) AllocateStatic(a netip.Addr) error {
	x, err := p.check(a, "assign")
	if err != nil {
		return err
	}
	if _, ok := p.allocated[x]; ok {
		return fmt.Errorf("cannot assign %s: %w; pick another --ip or disconnect the container that has it", a.Unmap(), ErrInUse)
	}
	p.allocated[x] = struct{}{}
	if p.inRange(x) {
		p.used++
		// Below the cursor a free address is in the heap; at or above it, the cursor will
		// skip it when it gets there.
		p.free.remove(x)
	}
	return nil
}

// Release gives back an address a container held. Releasing an address nobody holds, or a
// reserved one, is refused: either means the caller's bookkeeping is wrong.
func (p *Pool) Release(a netip.Addr) error {
	x, err := p.check(a, "release")
	if err != nil {
		return err
	}
	if _, ok := p.allocated[x]; !ok {
		return fmt.Errorf("cannot release %s: %w (it was never assigned or is already released)", a.Unmap(), ErrNotAllocated)
	}
	delete(p.allocated, x)
	if p.inRange(x) {
		p.used--
		if x < p.cursor {
			p.free.push(x)
		}
	}
	return nil
}

// check validates an address given to AllocateStatic or Release and converts it.
func (p *Pool) check(a netip.Addr, verb string) (uint64, error) {
	a = a.Unmap()
	if !p.subnet.Contains(a) {
		return 0, fmt.Errorf("cannot %s %v: %w %s", verb, a, ErrOutsideSubnet, p.subnet)
	}
	x := p.offset(a)
	var why string
	if aux, ok := p.reserved[x]; ok {
		why = reservedWhy(aux)
	}
	if u := p.unusableOffset(x); u != "" {
		why = u
	}
	if why != "" {
		return 0, fmt.Errorf("cannot %s %s: %w (%s)", verb, a, ErrReserved, why)
	}
	return x, nil
}

// reservedWhy explains a reserved map entry: the gateway has no aux name.
func reservedWhy(auxName string) string {
	if auxName == "" {
		return "it is the network's gateway"
	}
	return fmt.Sprintf("it is the aux address %q", auxName)
}

func (p *Pool) taken(x uint64) bool {
	if _, ok := p.allocated[x]; ok {
		return true
	}
	_, ok := p.reserved[x]
	return ok
}

func (p *Pool) inRange(x uint64) bool { return x >= p.lo && x <= p.hi }

func (p *Pool) v6() bool { return p.subnet.Addr().Is6() }

// spanOf is the highest offset in a prefix of bits on addresses of width bits (its size
// minus one), capped at 2^64-2 (see Pool.last).
func spanOf(bits, width int) uint64 {
	if host := width - bits; host < 64 {
		return 1<<host - 1
	}
	return 1<<64 - 2
}

// offset is a's distance from the subnet's first address; a is inside the subnet, whose host
// part (at most 64 bits, checkSubnet) is the low 64 bits.
func (p *Pool) offset(a netip.Addr) uint64 {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:]) - p.base4)
	}
	return low64(a) - low64(p.subnet.Addr())
}

// addrAt is the subnet's address at offset x.
func (p *Pool) addrAt(x uint64) netip.Addr {
	if !p.v6() {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], p.base4+uint32(x))
		return netip.AddrFrom4(b)
	}
	b := p.subnet.Addr().As16()
	v := binary.BigEndian.Uint64(b[8:]) + x
	binary.BigEndian.PutUint64(b[8:], v)
	return netip.AddrFrom16(b)
}

// low64 is the low 64 bits of an IPv6 address.
func low64(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[8:])
}
