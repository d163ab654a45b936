package portmap

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Fallback ephemeral range when the kernel's cannot be read: Docker's (49153-65535).
const (
	FallbackRangeStart = 49153
	FallbackRangeEnd   = 65535
)

// ErrAllocated is what a ConflictError matches with errors.Is: the host port is taken.
var ErrAllocated = errors.New("port is already allocated")

// ConflictError reports a host port that is taken, by cnet or by a socket on the host. Its
// message is Docker's: "Bind for 0.0.0.0:8080 failed: port is already allocated".
type ConflictError struct {
	HostIP   netip.Addr // zero: all addresses
	HostPort uint16
	HostEnd  uint16 // set when no port of a range was free
	Proto    string
	// Host is true when a socket on the host holds the port rather than another container.
	Host bool
}

func (e *ConflictError) Error() string {
	port := strconv.Itoa(int(e.HostPort))
	if e.HostEnd != 0 {
		port += "-" + strconv.Itoa(int(e.HostEnd))
	}
	host := addrOrAll(e.HostIP).String()
	if e.HostIP.Is6() {
		host = "[" + host + "]"
	}
	msg := "Bind for " + host + ":" + port + " failed: port is already allocated"
	if e.Host {
		msg += " by a socket on the host"
	}
	return msg
}

// Is lets errors.Is(err, ErrAllocated) match.
func (e *ConflictError) Is(target error) bool { return target == ErrAllocated }

// ErrExhausted is returned when no port of the ephemeral range is free (Docker's message).
var ErrExhausted = errors.New("all ports are allocated")

// EphemeralRange returns the range random host ports come from: the kernel's
// net.ipv4.ip_local_port_range of the caller's network namespace (as Docker does, so that the
// host's own tuning applies), or Docker's fallback 49153-65535 when it cannot be read.
func EphemeralRange() (lo, hi uint16) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return FallbackRangeStart, FallbackRangeEnd
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return FallbackRangeStart, FallbackRangeEnd
	}
	a, err1 := strconv.ParseUint(f[0], 10, 16)
	z, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || a == 0 || z < a {
		return FallbackRangeStart, FallbackRangeEnd
	}
	return uint16(a), uint16(z)
}

// holder is one reserved (proto, address, port); 0.0.0.0 and :: stand for all addresses of
// their family.
type holder struct {
	proto string
	ip    netip.Addr
	port  uint16
}

// protoPort is a port of one family (the kernel's IPv4 and IPv6-only sockets do not conflict).
type protoPort struct {
	proto string
	port  uint16
	v6    bool
}

// Allocator hands out host ports per protocol and host address. Its state is sparse: a map
// entry per reserved port, so every check, reservation and release is O(1) however many ports
// are in use. A port reserved on all addresses conflicts with the same port on any one address
// of its family and the other way round, as the kernel's bind does for an IPv6-only socket.
// Here the zero HostIP and 0.0.0.0 both mean all IPv4 addresses, :: all IPv6 ones (Docker's
// default binding is both: the caller reserves each). The zero value is not usable: call
// NewAllocator. It is safe for concurrent use.
//
// The allocator is in-memory: a restarted daemon rebuilds it by reserving the recorded
// mappings of its running containers (explicit host ports) before it publishes anything new.
type Allocator struct {
	// Probe, when set, is asked about every candidate port before it is reserved (ProbeHost
	// in the daemon, so that a port some host process listens on is refused). A *ConflictError
	// from it refuses an explicit port and makes a random or range pick move on; any other
	// error is returned.
	Probe func(Mapping) error

	mu      sync.Mutex
	lo, hi  uint16
	held    map[holder]struct{}
	perPort map[protoPort]int // holders of (proto, port) over all addresses
}

// NewAllocator returns an allocator whose random ports come from lo..hi (see EphemeralRange).
func NewAllocator(lo, hi uint16) *Allocator {
	if lo == 0 {
		lo = 1
	}
	if hi < lo {
		hi = lo
	}
	return &Allocator{lo: lo, hi: hi, held: map[holder]struct{}{}, perPort: map[protoPort]int{}}
}

// Range returns the range random host ports are picked from.
func (a *Allocator) Range() (lo, hi uint16) { return a.lo, a.hi }

// Reserve reserves m's host port and returns m with it filled in: as given when HostPort is
// set, the lowest free port of HostPort..HostPortEnd for a range, or a random free port of the
// ephemeral range when HostPort is 0. A taken port is a *ConflictError (errdefs.Conflict).
func (a *Allocator) Reserve(m Mapping) (Mapping, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reserve(m)
}

// ReserveAll reserves every mapping or none: on error nothing stays reserved. This is what a
// container start needs, so that a conflict on the last port of a range changes nothing.
func (a *Allocator) ReserveAll(ms []Mapping) ([]Mapping, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Mapping, 0, len(ms))
	for _, m := range ms {
		r, err := a.reserve(m)
		if err != nil {
			for _, done := range out {
				a.release(done)
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Release frees m's host port. Releasing a port that is not reserved does nothing, so that
// rollback and cleanup can call it unconditionally.
func (a *Allocator) Release(m Mapping) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.release(m)
}

// ReleaseAll releases every mapping in ms.
func (a *Allocator) ReleaseAll(ms []Mapping) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, m := range ms {
		a.release(m)
	}
}

// InUse reports how many host ports are reserved.
func (a *Allocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.held)
}

func (a *Allocator) reserve(m Mapping) (Mapping, error) {
	if err := validate(m); err != nil {
		return Mapping{}, err
	}
	switch {
	case m.HostPort != 0 && m.HostPortEnd == 0:
		if err := a.check(m); err != nil {
			return Mapping{}, err
		}
		a.take(m)
		return m, nil
	case m.HostPort != 0:
		for p := int(m.HostPort); p <= int(m.HostPortEnd); p++ {
			c := m
			c.HostPort, c.HostPortEnd = uint16(p), 0
			err := a.check(c)
			if err == nil {
				a.take(c)
				return c, nil
			}
			if !errors.Is(err, ErrAllocated) {
				return Mapping{}, err
			}
		}
		return Mapping{}, errdefs.Conflict("%w", &ConflictError{HostIP: m.HostIP, HostPort: m.HostPort, HostEnd: m.HostPortEnd, Proto: m.Proto})
	default:
		size := int(a.hi-a.lo) + 1
		start := rand.IntN(size)
		for i := range size {
			c := m
			c.HostPort = a.lo + uint16((start+i)%size)
			err := a.check(c)
			if err == nil {
				a.take(c)
				return c, nil
			}
			if !errors.Is(err, ErrAllocated) {
				return Mapping{}, err
			}
		}
		return Mapping{}, errdefs.Conflict("no free host port for %s in %d-%d on %s: %w",
			m.Port(), a.lo, a.hi, addrOrAll(m.HostIP), ErrExhausted)
	}
}

// check refuses a port cnet already holds (on the same address, on all addresses, or, for
// all addresses, on any one), then asks Probe.
func (a *Allocator) check(m Mapping) error {
	ip := key(m.HostIP)
	taken := false
	if ip.IsUnspecified() {
		taken = a.perPort[protoPort{m.Proto, m.HostPort, ip.Is6()}] > 0
	} else {
		_, one := a.held[holder{m.Proto, ip, m.HostPort}]
		_, all := a.held[holder{m.Proto, unspecified(ip), m.HostPort}]
		taken = one || all
	}
	if taken {
		return errdefs.Conflict("%w", &ConflictError{HostIP: m.HostIP, HostPort: m.HostPort, Proto: m.Proto})
	}
	if a.Probe != nil {
		if err := a.Probe(m); err != nil {
			var ce *ConflictError
			if errors.As(err, &ce) && !errdefs.Is(err, errdefs.KindConflict) {
				return errdefs.Conflict("%w", err)
			}
			return err
		}
	}
	return nil
}

func (a *Allocator) take(m Mapping) {
	ip := key(m.HostIP)
	a.held[holder{m.Proto, ip, m.HostPort}] = struct{}{}
	a.perPort[protoPort{m.Proto, m.HostPort, ip.Is6()}]++
}

func (a *Allocator) release(m Mapping) {
	if m.HostPort == 0 {
		return
	}
	h := holder{m.Proto, key(m.HostIP), m.HostPort}
	if _, ok := a.held[h]; !ok {
		return
	}
	delete(a.held, h)
	pp := protoPort{m.Proto, m.HostPort, h.ip.Is6()}
	if a.perPort[pp] <= 1 {
		delete(a.perPort, pp)
	} else {
		a.perPort[pp]--
	}
}

func validate(m Mapping) error {
	switch m.Proto {
	case TCP, UDP, SCTP:
	default:
		return errdefs.Invalid("invalid protocol %q: want tcp, udp or sctp", m.Proto)
	}
	if m.HostIP.IsValid() && (m.HostIP.Is4In6() || m.HostIP.Zone() != "") {
		return errdefs.Invalid("invalid host address %s: want a plain IPv4 or IPv6 address", m.HostIP)
	}
	if m.HostPortEnd != 0 && m.HostPortEnd < m.HostPort {
		return errdefs.Invalid("invalid host port range %d-%d", m.HostPort, m.HostPortEnd)
	}
	if m.HostPortEnd != 0 && m.HostPort == 0 {
		return errdefs.Invalid("invalid host port range 0-%d: port 0 cannot be published", m.HostPortEnd)
	}
	return nil
}

// key maps "not given" to 0.0.0.0: both mean all IPv4 addresses.
func key(ip netip.Addr) netip.Addr {
	if !ip.IsValid() {
		return netip.IPv4Unspecified()
	}
	return ip
}

// unspecified is the all-addresses address of ip's family.
func unspecified(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

func addrOrAll(ip netip.Addr) netip.Addr {
	if !ip.IsValid() {
		return netip.IPv4Unspecified()
	}
	return ip
}
