package ipam

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them, so the controller can
// classify a failure with errors.Is (bad request, conflict, exhausted) while the message keeps
// the address or subnet the user needs to fix it.
var (
	// ErrPoolExhausted is Docker's wording. The pool does not know the network's name, so the
	// controller should name the network when it reports the error.
	ErrPoolExhausted = errors.New("no available IPv4 addresses on this network's address pools")

	// ErrNoDefaultPool is Docker's exact message, kept so that scripts matching it still work.
	ErrNoDefaultPool = errors.New("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
	// ErrNoDefaultPool6 is its IPv6 counterpart.
	ErrNoDefaultPool6 = errors.New("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network")

	// ErrOutsideSubnet rejects an address the network cannot route to its containers.
	ErrOutsideSubnet = errors.New("address is outside the network's subnet")

	// ErrInUse is returned when another container already holds the address.
	ErrInUse = errors.New("address already in use")

	// ErrReserved protects addresses that must never be a container's: the network and
	// broadcast addresses, the gateway and the aux addresses.
	ErrReserved = errors.New("address is reserved")

	// ErrNotAllocated is returned by Release for an address nobody holds; releasing twice is
	// a bookkeeping bug in the caller that must not go unnoticed.
	ErrNotAllocated = errors.New("address is not allocated")

	// ErrOverlap is Docker's exact message, capital letter included.
	ErrOverlap = errors.New("Pool overlaps with other one on this address space")

	// ErrInvalidConfig is wrapped by every validation error of NewPool, so the API can answer
	// 400 without parsing messages.
	ErrInvalidConfig = errors.New("invalid IPAM configuration")
)

// configError carries a message that names the offending flag and value, and still matches
// ErrInvalidConfig with errors.Is. A plain %w wrap would prefix every message with
// ErrInvalidConfig's text, which tells the user nothing they can act on.
type configError struct{ msg string }

func (e *configError) Error() string        { return e.msg }
func (e *configError) Is(target error) bool { return target == ErrInvalidConfig }

func invalidf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}
