// Package portmap parses Docker's publish and expose specs (`-p`, `--expose`) and hands out host
// ports. It is pure Go: nothing here touches the kernel except ProbeHost, which binds a socket
// for a moment to see whether something else on the host already owns a port.
//
// A spec that names a range of ports becomes one Mapping per port, as Docker's parser does,
// because that is the unit the firewall programs (one map element per port, O(1) to add or
// remove) and the unit `cnet port` prints. The one exception is Docker's "pick one free port of
// this host range" form, `-p 8000-8010:80`: a single container port with a host range stays one
// Mapping whose HostPort..HostPortEnd is the range to choose from; Allocator.Reserve turns it
// into a concrete port.
package portmap

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Protocols a port can be published for, as Docker spells them.
const (
	TCP  = "tcp"
	UDP  = "udp"
	SCTP = "sctp"
)

// Port is a container port and its protocol, what Docker writes as "80/tcp" (the keys of
// ExposedPorts and NetworkSettings.Ports).
type Port struct {
	Num   uint16
	Proto string
}

// String returns Docker's form, "80/tcp".
func (p Port) String() string { return strconv.Itoa(int(p.Num)) + "/" + p.Proto }

// Mapping is one published port: traffic for HostIP:HostPort/Proto on the host goes to
// ContainerPort/Proto of the container.
type Mapping struct {
	// HostIP is the host address the port is published on. The zero Addr means "not given":
	// the network's host_binding_ipv4 applies (0.0.0.0 unless set); an explicit 0.0.0.0 means
	// all of the host's addresses. Only IPv4 is supported.
	HostIP netip.Addr
	// HostPort is the host port; 0 asks Allocator.Reserve to pick one from the ephemeral range.
	HostPort uint16
	// HostPortEnd, when not 0, makes HostPort..HostPortEnd a range from which Reserve picks
	// one free port (Docker's `-p 8000-8010:80`). A reserved Mapping never has it set.
	HostPortEnd uint16
	// ContainerPort is the port inside the container.
	ContainerPort uint16
	// Proto is TCP, UDP or SCTP.
	Proto string
}

// Port returns the container side of m.
func (m Mapping) Port() Port { return Port{Num: m.ContainerPort, Proto: m.Proto} }

// String returns m as a spec that ParseSpec reads back to m: [IP:][HOSTPORT[-END]]:CPORT/PROTO,
// shortened to CPORT/PROTO when neither host address nor host port is set.
func (m Mapping) String() string {
	var b strings.Builder
	if m.HostIP.Is6() {
		b.WriteString("[" + m.HostIP.String() + "]:")
	} else if m.HostIP.IsValid() {
		b.WriteString(m.HostIP.String())
		b.WriteByte(':')
	}
	if m.HostPort != 0 {
		b.WriteString(strconv.Itoa(int(m.HostPort)))
		if m.HostPortEnd != 0 {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(m.HostPortEnd)))
		}
	}
	if b.Len() > 0 {
		b.WriteByte(':')
	}
	b.WriteString(m.Port().String())
	return b.String()
}

// ParseSpec parses one `-p` value the way `docker run` does:
//
//	CPORT[-END]                          container port(s), random host port(s)
//	HOSTPORT[-END]:CPORT[-END]           ranges of equal length map port by port
//	HOSTPORT-END:CPORT                   one port picked from the host range
//	IP:HOSTPORT[-END]:CPORT[-END]        published on one host address
//	IP::CPORT[-END]                      one host address, random host port(s)
//
// each optionally followed by /tcp (the default), /udp or /sctp. An IPv6 host address is
// written in brackets ([::1]:8080:80). Unlike Docker it refuses port 0 and an empty protocol
// after "/".
// Errors are errdefs.Invalid and name the part that is wrong.
func ParseSpec(spec string) ([]Mapping, error) {
	if spec == "" {
		return nil, errdefs.Invalid("invalid port spec \"\": want [IP:][HOSTPORT:]CPORT[/PROTO]")
	}
	rest, proto, err := splitProto(spec)
	if err != nil {
		return nil, err
	}
	ipPart, hostPart, cPart, err := splitParts(spec, rest)
	if err != nil {
		return nil, err
	}
	var ip netip.Addr
	if ipPart != "" {
		if ip, err = parseHostIP(ipPart); err != nil {
			return nil, errdefs.Invalid("invalid port spec %q: %w", spec, err)
		}
	}
	if cPart == "" {
		return nil, errdefs.Invalid("invalid port spec %q: no container port", spec)
	}
	cLo, cHi, err := parseRange(cPart)
	if err != nil {
		return nil, errdefs.Invalid("invalid container port in %q: %w", spec, err)
	}
	var hLo, hHi uint16
	if hostPart != "" {
		if hLo, hHi, err = parseRange(hostPart); err != nil {
			return nil, errdefs.Invalid("invalid host port in %q: %w", spec, err)
		}
	}

	// One container port with a host range: Docker's "pick one free port of the range".
	if hostPart != "" && cLo == cHi && hLo != hHi {
		return []Mapping{{HostIP: ip, HostPort: hLo, HostPortEnd: hHi, ContainerPort: cLo, Proto: proto}}, nil
	}
	if hostPart != "" && hHi-hLo != cHi-cLo {
		return nil, errdefs.Invalid("invalid port spec %q: host range %s has %d ports but container range %s has %d",
			spec, hostPart, int(hHi-hLo)+1, cPart, int(cHi-cLo)+1)
	}
	n := int(cHi-cLo) + 1
	out := make([]Mapping, n)
	for i := range n {
		m := Mapping{HostIP: ip, ContainerPort: cLo + uint16(i), Proto: proto}
		if hostPart != "" {
			m.HostPort = hLo + uint16(i)
		}
		out[i] = m
	}
	return out, nil
}

// ParseExpose parses one `--expose` value: PORT[-END][/PROTO].
func ParseExpose(spec string) ([]Port, error) {
	rest, proto, err := splitProto(spec)
	if err != nil {
		return nil, err
	}
	if rest == "" {
		return nil, errdefs.Invalid("invalid expose spec %q: no port", spec)
	}
	lo, hi, err := parseRange(rest)
	if err != nil {
		return nil, errdefs.Invalid("invalid expose spec %q: %w", spec, err)
	}
	out := make([]Port, 0, int(hi-lo)+1)
	for p := int(lo); p <= int(hi); p++ {
		out = append(out, Port{Num: uint16(p), Proto: proto})
	}
	return out, nil
}

// ParsePort parses Docker's "80/tcp" (or "80", meaning tcp), as `docker port NAME 80/tcp`
// and the keys of ExposedPorts take it.
func ParsePort(s string) (Port, error) {
	rest, proto, err := splitProto(s)
	if err != nil {
		return Port{}, err
	}
	p, err := parsePort(rest)
	if err != nil {
		return Port{}, errdefs.Invalid("invalid port %q: %w", s, err)
	}
	return Port{Num: p, Proto: proto}, nil
}

// splitProto cuts "/proto" off spec; the protocol defaults to tcp and is case-insensitive.
func splitProto(spec string) (rest, proto string, err error) {
	i := strings.IndexByte(spec, '/')
	if i < 0 {
		return spec, TCP, nil
	}
	proto = strings.ToLower(spec[i+1:])
	switch proto {
	case TCP, UDP, SCTP:
		return spec[:i], proto, nil
	}
	return "", "", errdefs.Invalid("invalid protocol %q in %q: want tcp, udp or sctp", spec[i+1:], spec)
}

// splitParts splits IP:HOST:CONTAINER as Docker does: the last field is the container port,
// the one before it the host port, anything before that the address (which may itself hold
// colons when it is IPv6, so it is rejoined, and brackets are stripped).
func splitParts(spec, rest string) (ip, host, container string, err error) {
	parts := strings.Split(rest, ":")
	n := len(parts)
	switch n {
	case 1:
		return "", "", parts[0], nil
	case 2:
		return "", parts[0], parts[1], nil
	case 3:
		ip = parts[0]
	default:
		ip = strings.Join(parts[:n-2], ":")
	}
	if strings.HasPrefix(ip, "[") || strings.HasSuffix(ip, "]") {
		if !strings.HasPrefix(ip, "[") || !strings.HasSuffix(ip, "]") {
			return "", "", "", errdefs.Invalid("invalid host address %q in %q: unbalanced brackets", ip, spec)
		}
		ip = ip[1 : len(ip)-1]
		if ip == "" {
			return "", "", "", errdefs.Invalid("invalid host address \"[]\" in %q", spec)
		}
	}
	return ip, parts[n-2], parts[n-1], nil
}

func parseHostIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid host address %q: want an IP address such as 127.0.0.1 or [::1]", s)
	}
	return ip.Unmap(), nil
}

// parseRange parses "P" or "LO-HI".
func parseRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePort(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range %s ends before it starts", s)
	}
	return lo, hi, nil
}

var errPortZero = errors.New("port 0 cannot be published: want 1 to 65535")

func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty port: want a number from 1 to 65535")
	}
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("port %s out of range: want 1 to 65535", s)
		}
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	if v == 0 {
		return 0, errPortZero
	}
	return uint16(v), nil
}
