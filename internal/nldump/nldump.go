// Package nldump lists links, addresses, routes and neighbours through netlink, retrying a
// dump the kernel marked interrupted.
//
// A netlink dump spans several messages; when the table changes in between, the kernel marks
// the dump NLM_F_DUMP_INTR and vishvananda/netlink returns ErrDumpInterrupted along with the
// partial result. Acting on a partial list is wrong in subtle ways (a bridge not found at
// restore, a default pool chosen over a host route it did not see), so every listing in cnet
// goes through this package, which asks again. containernetworking/plugins does the same in
// pkg/netlinksafe. A test in this package fails if code elsewhere calls a dump directly.
package nldump

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// Attempts is how many times a dump is asked for before its interruption is reported: each
// retry is a fresh dump, and an interruption needs a change to the table during the dump, so
// a handful covers even a busy host.
const Attempts = 5

// Retry runs dump until the kernel does not mark it interrupted, at most Attempts times. Any
// other error is returned at once; after the last interrupted attempt, the error wraps
// netlink.ErrDumpInterrupted and the partial result is dropped.
func Retry[T any](what string, dump func() (T, error)) (T, error) {
	var zero T
	for range Attempts {
		v, err := dump()
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return zero, err
		}
	}
	return zero, fmt.Errorf("listing %s: the kernel interrupted the netlink dump %d times in a row (the table kept changing): %w",
		what, Attempts, netlink.ErrDumpInterrupted)
}

// handle is h, or the package-level handle (the calling thread's namespace) when h is nil.
func handle(h *netlink.Handle) *netlink.Handle {
	if h == nil {
		return &netlink.Handle{}
	}
	return h
}

// LinkList lists every link of h's namespace (nil: the calling thread's).
func LinkList(h *netlink.Handle) ([]netlink.Link, error) {
	return Retry("links", handle(h).LinkList)
}

// LinkByName finds a link by name. The kernel answers that with one message, but netlink
// falls back to a full link dump on kernels without lookup by name.
func LinkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	return Retry("links", func() (netlink.Link, error) { return handle(h).LinkByName(name) })
}

// AddrList lists the addresses of link (nil: every link) of a family.
func AddrList(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Addr, error) {
	return Retry("addresses", func() ([]netlink.Addr, error) { return handle(h).AddrList(link, family) })
}

// RouteList lists the main table's routes through link (nil: every link) of a family.
func RouteList(h *netlink.Handle, link netlink.Link, family int) ([]netlink.Route, error) {
	return Retry("routes", func() ([]netlink.Route, error) { return handle(h).RouteList(link, family) })
}

// NeighList lists the neighbour entries of a link index (0: every link) of a family.
func NeighList(h *netlink.Handle, linkIndex, family int) ([]netlink.Neigh, error) {
	return Retry("neighbours", func() ([]netlink.Neigh, error) { return handle(h).NeighList(linkIndex, family) })
}
