// Package dns is the embedded DNS server that answers at 127.0.0.11 in every sandbox on a
// user-defined network, as Docker's does: container names, aliases, hostnames and short ids of
// the endpoints on the networks the sandbox is attached to, their PTR records, and everything
// else forwarded to the upstream servers of the host (or of the container's --dns).
//
// The package has three parts that the daemon wires together:
//
//   - Table: the records of every network, one per daemon, updated as endpoints come and go.
//   - Resolver: one per sandbox, the view of the Table through the sandbox's networks plus its
//     upstream servers; it answers raw DNS messages and is also a miekg dns.Handler.
//   - Listener: the sockets at 127.0.0.11 inside the sandbox's namespace and the nftables rules
//     that send port 53 there, served by goroutines of the daemon.
//
// Queries are answered from their wire bytes without building a dns.Msg: the hot path (a name
// on the sandbox's networks) makes no allocation, which is what lets one daemon answer for many
// containers at a rate far above Docker's. Forwarding passes the client's message through
// unchanged apart from its ID.
package dns

import (
	"net/netip"
	"strings"
	"sync"
)

// Record is what the resolver knows of one endpoint on one network.
type Record struct {
	EndpointID  string
	ContainerID string
	// Names resolve to the endpoint's addresses: the container name first (PTR answers use it,
	// as Docker answers container_name.network_name), then aliases, hostname, 12-char id.
	Names []string
	IPv4  netip.Addr // invalid when the endpoint has none
	IPv6  netip.Addr // invalid when the endpoint has none
}

// Table holds the records of every network. One Table serves every sandbox of a daemon; each
// sandbox's Resolver sees only the networks it is attached to. Safe for concurrent use.
//
// Every slice reachable from the table is immutable once published (an update copies), so a
// lookup holds the read lock only for the map lookups and then works on what it found.
type Table struct {
	mu   sync.RWMutex
	nets map[string]*netRecords // by network name, as given to Upsert
}

type netRecords struct {
	name  string                // as given, used in PTR answers
	eps   map[string]*entry     // by endpoint ID
	names map[string][]*entry   // lowercase name without trailing dot → holders, oldest first
	ips   map[netip.Addr]*entry // for PTR
}

// entry is one endpoint's record with the forms the hot path needs precomputed.
type entry struct {
	rec    Record
	lnames []string // distinct lowercase names without trailing dot
	ptr    []byte   // wire form of "name.network.", nil when it cannot be encoded
}

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{nets: make(map[string]*netRecords)}
}

// Upsert adds the endpoint's record to network, replacing any earlier record of the same
// EndpointID (a rename, a new alias, a new address). It takes effect for the next query.
func (t *Table) Upsert(network string, r Record) {
	e := newEntry(network, r)
	t.mu.Lock()
	defer t.mu.Unlock()
	nr := t.nets[network]
	if nr == nil {
		nr = &netRecords{
			name:  network,
			eps:   make(map[string]*entry),
			names: make(map[string][]*entry),
			ips:   make(map[netip.Addr]*entry),
		}
		t.nets[network] = nr
	}
	if old := nr.eps[r.EndpointID]; old != nil {
		nr.remove(old)
	}
	nr.eps[r.EndpointID] = e
	for _, n := range e.lnames {
		old := nr.names[n]
		holders := make([]*entry, len(old), len(old)+1)
		copy(holders, old)
		nr.names[n] = append(holders, e)
	}
	for _, ip := range [2]netip.Addr{e.rec.IPv4, e.rec.IPv6} {
		if ip.IsValid() {
			nr.ips[ip] = e
		}
	}
}

// Remove drops the endpoint's record from network (disconnect, container removal). Unknown
// endpoints and networks are ignored so that rollback paths can call it unconditionally.
func (t *Table) Remove(network, endpointID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nr := t.nets[network]
	if nr == nil {
		return
	}
	if e := nr.eps[endpointID]; e != nil {
		nr.remove(e)
	}
	if len(nr.eps) == 0 {
		delete(t.nets, network)
	}
}

// RemoveNetwork drops every record of network (network removal).
func (t *Table) RemoveNetwork(network string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.nets, network)
}

func (nr *netRecords) remove(e *entry) {
	delete(nr.eps, e.rec.EndpointID)
	for _, n := range e.lnames {
		old := nr.names[n]
		holders := make([]*entry, 0, len(old))
		for _, h := range old {
			if h != e {
				holders = append(holders, h)
			}
		}
		if len(holders) == 0 {
			delete(nr.names, n)
		} else {
			nr.names[n] = holders
		}
	}
	for _, ip := range [2]netip.Addr{e.rec.IPv4, e.rec.IPv6} {
		if ip.IsValid() && nr.ips[ip] == e {
			delete(nr.ips, ip)
		}
	}
}

func newEntry(network string, r Record) *entry {
	r.Names = append([]string(nil), r.Names...)
	e := &entry{rec: r}
	seen := make(map[string]bool, len(r.Names))
	for _, n := range r.Names {
		n = normalize(n)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		e.lnames = append(e.lnames, n)
	}
	if len(r.Names) > 0 && strings.TrimSuffix(r.Names[0], ".") != "" {
		e.ptr = encodeName(strings.TrimSuffix(r.Names[0], ".") + "." + network)
	}
	return e
}

// normalize is the form names are matched in: DNS names are case-insensitive (ASCII only) and
// a trailing dot only says the name is absolute.
func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// encodeName returns the uncompressed wire form of a dotted name (root label added), or nil if
// a label is empty or longer than 63 bytes or the name longer than 255 bytes.
func encodeName(name string) []byte {
	b := make([]byte, 0, len(name)+2)
	for label := range strings.SplitSeq(name, ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil
		}
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0)
	if len(b) > 255 {
		return nil
	}
	return b
}

// family selects the addresses a lookup wants.
type family uint8

const (
	famV4 family = 1 << iota
	famV6
	famAny = famV4 | famV6
)

func (e *entry) has(f family) bool {
	return (f&famV4 != 0 && e.rec.IPv4.IsValid()) || (f&famV6 != 0 && e.rec.IPv6.IsValid())
}

// resolve finds the holders of key (lowercase, no trailing dot) as the sandbox with view v sees
// them, Docker's way: the name on each attached network in attachment order, then for
// "a.b.c" the name "a.b" on network "c" and "a" on network "b.c". The first network where
// the name has an address of family f wins; known reports whether the name exists at all on the
// sandbox's networks (a known name without such an address is NODATA, not NXDOMAIN).
//
// key is a byte slice so that the map lookups do not allocate.
func (t *Table) resolve(v *view, key []byte, f family) (holders []*entry, known bool) {
	if target, ok := v.links[string(key)]; ok {
		key = []byte(target) // rare: a --link alias, allocation accepted
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, n := range v.nets {
		nr := t.nets[n]
		if nr == nil {
			continue
		}
		if hs, ok := nr.names[string(key)]; ok {
			known = true
			if anyHas(hs, f) {
				return hs, true
			}
		}
	}
	for i := len(key) - 1; i > 0; i-- {
		if key[i] != '.' {
			continue
		}
		suffix := key[i+1:]
		for j, ln := range v.lnets {
			if ln != string(suffix) {
				continue
			}
			nr := t.nets[v.nets[j]]
			if nr == nil {
				continue
			}
			if hs, ok := nr.names[string(key[:i])]; ok {
				known = true
				if anyHas(hs, f) {
					return hs, true
				}
			}
		}
	}
	return nil, known
}

func anyHas(hs []*entry, f family) bool {
	for _, h := range hs {
		if h.has(f) {
			return true
		}
	}
	return false
}

// reverse returns the wire form of "name.network." for ip on the first network of v that has it.
func (t *Table) reverse(v *view, ip netip.Addr) []byte {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, n := range v.nets {
		if nr := t.nets[n]; nr != nil {
			if e := nr.ips[ip]; e != nil && e.ptr != nil {
				return e.ptr
			}
		}
	}
	return nil
}

// view is one sandbox's window on the Table. It is immutable: a Resolver swaps in a new one
// when the sandbox connects or disconnects.
type view struct {
	nets  []string          // network names in attachment order
	lnets []string          // the same, lowercase, for "name.network"
	links map[string]string // lowercase link alias → lowercase container name
}

func newView(networks []string, links map[string]string) *view {
	v := &view{nets: append([]string(nil), networks...)}
	for _, n := range networks {
		v.lnets = append(v.lnets, strings.ToLower(n))
	}
	if len(links) > 0 {
		v.links = make(map[string]string, len(links))
		for alias, name := range links {
			v.links[normalize(alias)] = normalize(name)
		}
	}
	return v
}
