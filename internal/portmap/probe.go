package portmap

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// ProbeHost reports whether a socket of the calling thread's network namespace already holds
// m's host address and port: it binds a socket of m's protocol there and closes it at once.
// The kernel NAT that publishes the port would silently shadow such a listener, so Docker's
// rule (a port some process owns is refused) is kept by asking the kernel first.
//
// TCP and SCTP sockets are bound with SO_REUSEADDR, so that connections lingering in
// TIME_WAIT do not count but a listener does; UDP is bound without it, so any bound socket
// counts. Nothing is left bound when it returns. A taken port is a *ConflictError; an
// address that is not the host's is an errdefs.Invalid error. A kernel without SCTP cannot
// have an SCTP listener, so that probe succeeds.
func ProbeHost(m Mapping) error {
	if err := validate(m); err != nil {
		return err
	}
	if m.HostPort == 0 || m.HostPortEnd != 0 {
		return errdefs.Invalid("cannot probe %s: the host port is not chosen yet", m)
	}
	typ, proto, reuse := unix.SOCK_STREAM, unix.IPPROTO_TCP, true
	switch m.Proto {
	case UDP:
		typ, proto, reuse = unix.SOCK_DGRAM, unix.IPPROTO_UDP, false
	case SCTP:
		proto = unix.IPPROTO_SCTP
	}
	family := unix.AF_INET
	if m.HostIP.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		if m.Proto == SCTP && (errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT)) {
			return nil
		}
		return fmt.Errorf("probing host port %s: opening a socket: %w", m, err)
	}
	defer unix.Close(fd)
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fmt.Errorf("probing host port %s: %w", m, err)
		}
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(m.HostPort)}
	if m.HostIP.Is6() {
		// Only the IPv6 side: an IPv4 listener on the port is the IPv4 probe's business.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fmt.Errorf("probing host port %s: %w", m, err)
		}
		sa = &unix.SockaddrInet6{Port: int(m.HostPort), Addr: m.HostIP.As16()}
	} else if m.HostIP.IsValid() {
		sa.(*unix.SockaddrInet4).Addr = m.HostIP.As4()
	}
	switch err := unix.Bind(fd, sa); {
	case err == nil:
		return nil
	case errors.Is(err, unix.EADDRINUSE):
		return errdefs.Conflict("%w", &ConflictError{HostIP: m.HostIP, HostPort: m.HostPort, Proto: m.Proto, Host: true})
	case errors.Is(err, unix.EADDRNOTAVAIL):
		return errdefs.Invalid("cannot publish on %s: it is not an address of this host", m.HostIP)
	default:
		return fmt.Errorf("probing host port %s: bind: %w", m, err)
	}
}
