package dns

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

// Config is a sandbox's resolver configuration.
type Config struct {
	// Networks the sandbox is attached to, in attachment order: a name held on several of them
	// resolves on the first (Docker's order).
	Networks []string
	// Links maps a --link alias to the container name it stands for; only this sandbox sees it.
	Links map[string]string
	// Upstreams receive every query the resolver does not own: the host's resolv.conf servers or
	// the container's --dns. Empty disables forwarding (a sandbox on --internal networks only):
	// such queries get SERVFAIL, as Docker answers them.
	Upstreams []netip.AddrPort
	// Dial opens connections to upstreams; nil dials from the calling goroutine's thread, i.e.
	// the daemon's namespace. See NamespaceDialer for Docker's split.
	Dial Dialer
	// NdotsSet says the container set ndots in its resolv.conf options: a single-label A/AAAA
	// name the resolver does not own is then answered NODATA instead of forwarded, so that the
	// client goes on with its search domains (Docker's behaviour).
	NdotsSet bool
}

// Resolver answers the DNS queries of one sandbox. It implements miekg's dns.Handler, and
// Serve runs it on a sandbox's 127.0.0.11 without building dns.Msg values.
// Safe for concurrent use; the setters take effect for the next query.
type Resolver struct {
	table *Table
	fwd   *Forwarder
	mu    sync.Mutex // serialises the setters
	st    atomic.Pointer[state]
}

// state is an immutable snapshot of a resolver's configuration, swapped whole by the setters so
// that queries read it without locking.
type state struct {
	view      *view
	upstreams []netip.AddrPort
	dial      Dialer
	ndots     bool
}

// NewResolver returns the resolver of one sandbox over table. fwd, shared by every resolver of
// the daemon, bounds concurrent forwards; nil disables forwarding whatever cfg says.
func NewResolver(table *Table, fwd *Forwarder, cfg Config) *Resolver {
	r := &Resolver{table: table, fwd: fwd}
	dial := cfg.Dial
	if dial == nil {
		dial = dialHere
	}
	r.st.Store(&state{
		view:      newView(cfg.Networks, cfg.Links),
		upstreams: append([]netip.AddrPort(nil), cfg.Upstreams...),
		dial:      dial,
		ndots:     cfg.NdotsSet,
	})
	return r
}

// SetNetworks replaces the sandbox's networks (connect, disconnect), keeping its links.
func (r *Resolver) SetNetworks(networks []string) {
	r.update(func(s *state) { s.view = newView(networks, s.view.links) })
}

// SetLinks replaces the sandbox's --link aliases (alias → container name).
func (r *Resolver) SetLinks(links map[string]string) {
	r.update(func(s *state) { s.view = newView(s.view.nets, links) })
}

// SetUpstreams replaces the servers queries are forwarded to; empty disables forwarding (the
// sandbox is left on --internal networks only).
func (r *Resolver) SetUpstreams(upstreams []netip.AddrPort) {
	r.update(func(s *state) { s.upstreams = append([]netip.AddrPort(nil), upstreams...) })
}

func (r *Resolver) update(change func(*state)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := *r.st.Load()
	change(&s)
	r.st.Store(&s)
}

// action says what to do with a message after respond looked at it.
type action int

const (
	actDrop    action = iota // send nothing: not a query, or too short to have an ID
	actReply                 // send the returned message
	actForward               // the message is unchanged: forward it
)

// respond answers msg in place when the resolver owns the answer (the reply overwrites msg and
// may grow past it); otherwise msg is left untouched and actForward returned. It never blocks,
// so a listener calls it on its read loop.
func (r *Resolver) respond(msg []byte, tcp bool) ([]byte, action) {
	var q query
	if parseHeader(msg, &q) != nil || q.flags&flagQR != 0 {
		// Never answer a response: two resolvers would echo each other forever.
		return nil, actDrop
	}
	if opcode(q.flags) != 0 {
		return headerOnly(msg, &q, rcodeNotImp), actReply
	}
	if binary.BigEndian.Uint16(msg[4:]) != 1 || parseQuery(msg, &q) != nil {
		return headerOnly(msg, &q, rcodeFormErr), actReply
	}
	if q.edns && q.version != 0 {
		rep := newReply(msg, &q, rcodeSuccess, tcp)
		rep.ext = 1 // BADVERS (RFC 6891 6.1.3): we speak EDNS version 0 only
		return rep.finish(), actReply
	}
	switch {
	case q.qclass != classIN && q.qclass != classANY:
		return emptyReply(msg, &q, rcodeNotImp, tcp), actReply
	case q.qtype == typeOPT:
		return emptyReply(msg, &q, rcodeFormErr, tcp), actReply
	case q.qtype == typeAXFR || q.qtype == typeIXFR:
		return emptyReply(msg, &q, rcodeRefused, tcp), actReply // no zone transfers
	}

	st := r.st.Load()
	if q.plain {
		if b, ok := r.answer(msg, &q, st, tcp); ok {
			return b, actReply
		}
	}
	if len(st.upstreams) == 0 || r.fwd == nil {
		return emptyReply(msg, &q, rcodeServFail, tcp), actReply
	}
	if st.ndots && (q.qtype == typeA || q.qtype == typeAAAA) && q.plain && !hasDot(q.name()) {
		return emptyReply(msg, &q, rcodeSuccess, tcp), actReply
	}
	return msg, actForward
}

// answer writes the reply for a name the sandbox's networks hold, or reports false.
func (r *Resolver) answer(msg []byte, q *query, st *state, tcp bool) ([]byte, bool) {
	switch q.qtype {
	case typeA, typeAAAA, typeANY:
		f := famAny
		if q.qtype == typeA {
			f = famV4
		} else if q.qtype == typeAAAA {
			f = famV6
		}
		holders, known := r.table.resolve(st.view, q.name(), f)
		if !known {
			return nil, false
		}
		// holders is nil for a known name without an address of the family: NODATA.
		rep := newReply(msg, q, rcodeSuccess, tcp)
		if f&famV4 != 0 {
			addAll(&rep, holders, famV4, 16)
		}
		if f&famV6 != 0 {
			addAll(&rep, holders, famV6, 28)
		}
		return rep.finish(), true
	case typePTR:
		ip, ok := ptrAddr(q.name())
		if !ok {
			break
		}
		ptr := r.table.reverse(st.view, ip)
		if ptr == nil {
			return nil, false // not a container's address: the upstream may know it
		}
		rep := newReply(msg, q, rcodeSuccess, tcp)
		rep.add(typePTR, ptr)
		return rep.finish(), true
	}
	// Any other type of a name we own: NODATA, never forwarded (the upstream would say
	// NXDOMAIN and contradict the A answer).
	if _, known := r.table.resolve(st.view, q.name(), famAny); known {
		return emptyReply(msg, q, rcodeSuccess, tcp), true
	}
	return nil, false
}

// addAll adds the addresses of family f of holders, starting at a random holder so that a
// truncated answer is a random subset too, then shuffles the records that fit.
func addAll(rep *reply, holders []*entry, f family, size int) {
	n := len(holders)
	if n == 0 {
		return
	}
	start, before := rand.IntN(n), rep.count
	for i := range n {
		e := holders[(start+i)%n]
		if f == famV4 && e.rec.IPv4.IsValid() {
			rep.addAddr(e.rec.IPv4)
		} else if f == famV6 && e.rec.IPv6.IsValid() {
			rep.addAddr(e.rec.IPv6)
		}
	}
	shuffle(rep.b, rep.count-before, size, rand.IntN)
}

func hasDot(b []byte) bool {
	for _, c := range b {
		if c == '.' {
			return true
		}
	}
	return false
}

// handle answers msg, forwarding synchronously when needed; nil means no reply. It is the path
// of TCP connections and of ServeDNS; the UDP loop splits it to avoid blocking on forwards.
func (r *Resolver) handle(ctx context.Context, msg []byte, tcp bool) []byte {
	resp, act := r.respond(msg, tcp)
	switch act {
	case actReply:
		return resp
	case actForward:
		if !r.fwd.acquire() {
			return failure(msg, rcodeRefused, tcp)
		}
		defer r.fwd.release()
		return r.forward(ctx, msg, tcp)
	}
	return nil
}

// failure answers a query with rcode and no records, in place.
func failure(msg []byte, rcode int, tcp bool) []byte {
	var q query
	if parseHeader(msg, &q) != nil {
		return nil
	}
	if parseQuery(msg, &q) != nil {
		return headerOnly(msg, &q, rcode)
	}
	return emptyReply(msg, &q, rcode, tcp)
}

// ServeDNS implements miekg's dns.Handler, for use with a dns.Server: the message is packed
// back to wire format and answered as Serve's listeners answer it.
func (r *Resolver) ServeDNS(w mdns.ResponseWriter, m *mdns.Msg) {
	msg, err := m.Pack()
	if err != nil {
		_ = w.WriteMsg(new(mdns.Msg).SetRcodeFormatError(m))
		return
	}
	tcp := false
	if a := w.LocalAddr(); a != nil {
		tcp = a.Network() == "tcp"
	}
	if resp := r.handle(context.Background(), msg, tcp); resp != nil {
		_, _ = w.Write(resp)
	}
}
