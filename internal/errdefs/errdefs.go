// Package errdefs classifies errors by what the caller did wrong, so that the API can answer
// with the right HTTP status without the controller knowing about HTTP (as moby's errdefs).
package errdefs

import (
	"errors"
	"fmt"
)

// Kind is the class of an error.
type Kind int

// The kinds, each with the HTTP status the API answers it with.
const (
	KindUnknown     Kind = iota // 500
	KindInvalid                 // 400: bad input
	KindNotFound                // 404
	KindConflict                // 409: the state forbids it (in use, duplicate, already allocated)
	KindForbidden               // 403: never allowed (e.g. removing a predefined network)
	KindUnavailable             // 503: a service the operation needs cannot be reached (the cluster store)
)

type classified struct {
	kind Kind
	err  error
}

func (c *classified) Error() string { return c.err.Error() }
func (c *classified) Unwrap() error { return c.err }

func newf(k Kind, format string, args ...any) error {
	return &classified{kind: k, err: fmt.Errorf(format, args...)}
}

// Invalid reports bad input.
func Invalid(format string, args ...any) error { return newf(KindInvalid, format, args...) }

// NotFound reports an unknown object.
func NotFound(format string, args ...any) error { return newf(KindNotFound, format, args...) }

// Conflict reports an operation the current state does not allow.
func Conflict(format string, args ...any) error { return newf(KindConflict, format, args...) }

// Forbidden reports an operation that is never allowed.
func Forbidden(format string, args ...any) error { return newf(KindForbidden, format, args...) }

// Unavailable reports that something the operation depends on cannot be reached now; trying
// again later may succeed.
func Unavailable(format string, args ...any) error { return newf(KindUnavailable, format, args...) }

// KindOf returns the kind of the first classified error in err's chain.
func KindOf(err error) Kind {
	var c *classified
	if errors.As(err, &c) {
		return c.kind
	}
	return KindUnknown
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return KindOf(err) == k }
