package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/portmap"
)

// chunk is the most elements put in one netlink message: a message's element list is one
// netlink attribute, whose length field is 16 bits, and an element is at most ~70 bytes.
const chunk = 512

// AddNetwork programs network n in both tables: its bridge joins the isolation sets of each,
// its subnets the masquerade and hairpin sets of their family's table, and the bridge gets the
// kernel settings cnet's rules need (route_localnet, so that ports published on 127.0.0.1
// work; nf_call_iptables and nf_call_ip6tables when icc is off). The bridge must exist. Adding
// a network that is already there changes nothing.
func (f *Firewall) AddNetwork(n Network) error {
	b, err := networkElements(n)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.configureBridge(n); err != nil {
		return err
	}
	if err := f.queue(b, batch{}); err != nil {
		return err
	}
	return f.flush("adding network " + n.Bridge + " to nftables")
}

// RemoveNetwork removes every element of bridge's network from both tables, including ports
// still published into it, in one transaction. Removing a network that is not there is not
// an error.
func (f *Firewall) RemoveNetwork(bridge string) error {
	if err := checkBridge(bridge); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.read()
	if err != nil {
		return err
	}
	del := newBatch()
	br := ifname(bridge)
	pair := append(ifname(bridge), br...)
	for t, c := range cur {
		d := del[t]
		for _, set := range []string{setBridges, setInternal} {
			d.add(set, matching(c[set], func(el nftables.SetElement) bool { return string(el.Key) == string(br) })...)
		}
		for _, set := range []string{setSameBridge, setNoICC} {
			d.add(set, matching(c[set], func(el nftables.SetElement) bool { return string(el.Key) == string(pair) })...)
		}
		for _, set := range []string{setSubnets, setMasquerade} {
			for _, iv := range intervals(c[set]) {
				if iv.start.Comment == bridge {
					d.add(set, iv.start, iv.end)
				}
			}
		}
		for _, set := range []string{mapPortsAny, mapPortsIP} {
			d.add(set, matching(c[set], func(el nftables.SetElement) bool { return el.Comment == bridge })...)
		}
	}
	if del.empty() {
		return nil
	}
	if err := f.queue(batch{}, del); err != nil {
		return err
	}
	if err := f.flush("removing network " + bridge + " from nftables"); err != nil {
		return err
	}
	return f.forgetUDPFlows(del)
}

// AddPorts publishes those of ms (reserved mappings: host port chosen) that Applies to
// containerIP, an IPv4 or IPv6 address on bridge's network: one map element per port in the
// table of containerIP's family, all in one transaction. The others are skipped: the caller
// calls AddPorts once per address of the container, with all its mappings. Publishing an
// identical port again is a no-op; a host port that the firewall already sends to another
// address is a conflict and nothing changes.
func (f *Firewall) AddPorts(bridge string, containerIP netip.Addr, ms []portmap.Mapping) error {
	b, n, err := portElements(bridge, containerIP, ms)
	if err != nil || n == 0 {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.queue(b, batch{}); err != nil {
		return err
	}
	err = f.flush(fmt.Sprintf("publishing %d ports to %s", n, containerIP))
	if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
		return errdefs.Conflict("%w: %w", portmap.ErrAllocated, err)
	}
	return err
}

// RemovePorts unpublishes those of ms that Applies to containerIP, in one transaction. Ports
// that are not published (any more) are skipped, so rollback and cleanup can call it
// unconditionally.
func (f *Firewall) RemovePorts(bridge string, containerIP netip.Addr, ms []portmap.Mapping) error {
	b, n, err := portElements(bridge, containerIP, ms)
	if err != nil || n == 0 {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.queue(batch{}, b); err != nil {
		return err
	}
	err = f.flush(fmt.Sprintf("unpublishing %d ports of %s", n, containerIP))
	if err == nil {
		return f.forgetUDPFlows(b)
	}
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	// Some were gone, and the kernel refused the whole transaction: delete what is there and
	// still points at this container. This reads the maps, so it is only the fallback.
	cur, err := f.read()
	if err != nil {
		return err
	}
	del := newBatch()
	for t, e := range b {
		for set, want := range e {
			have := make(map[string]nftables.SetElement, len(cur[t][set]))
			for _, el := range cur[t][set] {
				have[string(el.Key)] = el
			}
			for _, el := range want {
				if h, ok := have[string(el.Key)]; ok && string(h.Val) == string(el.Val) {
					del[t].add(set, el)
				}
			}
		}
	}
	if del.empty() {
		return nil
	}
	if err := f.queue(batch{}, del); err != nil {
		return err
	}
	if err := f.flush(fmt.Sprintf("unpublishing the remaining ports of %s", containerIP)); err != nil {
		return err
	}
	return f.forgetUDPFlows(del)
}

func matching(els []nftables.SetElement, keep func(nftables.SetElement) bool) []nftables.SetElement {
	var out []nftables.SetElement
	for _, el := range els {
		if keep(el) {
			out = append(out, el)
		}
	}
	return out
}

// queue adds to the pending transaction the deletion of del and then the addition of add, a
// message per chunk of elements, for both tables (a transaction may span tables). A nil
// elements of a table is nothing for it. If the library refuses to queue one, the pending
// messages are discarded so that they cannot leak into the next transaction.
func (f *Firewall) queue(add, del batch) error {
	for _, op := range []struct {
		b  batch
		fn func(*nftables.Set, []nftables.SetElement) error
	}{{del, f.conn.SetDeleteElements}, {add, f.conn.SetAddElements}} {
		for t, l := range f.layouts {
			if l == nil {
				continue // no IPv6 in this kernel
			}
			for _, s := range l.sets { // in a fixed order, so transactions are reproducible
				for c := range slices.Chunk(op.b[t][s.Name], chunk) {
					if err := op.fn(s, c); err != nil {
						f.discard()
						return fmt.Errorf("encoding elements of nftables set %s of %s: %w", s.Name, l, err)
					}
				}
			}
		}
	}
	return nil
}

// discard drops queued messages by replacing the connection (the library has no way to
// empty its queue without sending it).
func (f *Firewall) discard() {
	_ = f.conn.CloseLasting()
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if f.ns >= 0 {
		opts = append(opts, nftables.WithNetNSFd(f.ns))
	}
	if c, err := nftables.New(opts...); err == nil {
		f.conn = c
	}
}

// read returns the elements of every set and map of both tables.
func (f *Firewall) read() (batch, error) {
	b := newBatch()
	for t, l := range f.layouts {
		if l == nil {
			continue // no IPv6 in this kernel
		}
		for _, s := range l.sets {
			els, err := f.conn.GetSetElements(s)
			if err != nil {
				return batch{}, fmt.Errorf("reading nftables set %s of %s (if the table is gone, Sync restores it): %w", s.Name, l, err)
			}
			b[t][s.Name] = els
		}
	}
	return b, nil
}
