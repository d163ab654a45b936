package firewall

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	mathbits "math/bits"
	"net/netip"
	"slices"

	"github.com/google/nftables"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Sync makes cnet's two tables hold exactly desired: it runs EnsureBase, then in one
// transaction removes every element desired does not have (what a crash or a removal while the
// daemon was down left behind) and adds what is missing; elements already right are not
// touched, so published ports keep working throughout. Ports whose mapping does not Apply to
// their container address are skipped. Then it applies the bridges' kernel settings; a bridge
// that is missing is reported, after everything else is done.
func (f *Firewall) Sync(desired State) error {
	want := newBatch()
	for _, n := range desired.Networks {
		b, err := networkElements(n)
		if err != nil {
			return err
		}
		for t, e := range b {
			for set, els := range e {
				want[t].add(set, els...)
			}
		}
	}
	type portKey struct {
		table    int
		set, key string
	}
	seen := map[portKey]Published{}
	for _, p := range desired.Ports {
		if err := checkAddr(p.ContainerIP, "container address"); err != nil {
			return fmt.Errorf("port %s: %w", p.Mapping, err)
		}
		if !Applies(p.ContainerIP, p.Mapping) {
			continue
		}
		t, set, el, err := portElement(p)
		if err != nil {
			return err
		}
		k := portKey{t, set, string(el.Key)}
		if q, dup := seen[k]; dup {
			return errdefs.Conflict("host port %s is published both to %s and to %s", p.Mapping, q.ContainerIP, p.ContainerIP)
		}
		seen[k] = p
		want[t].add(set, el)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensureBase(); err != nil {
		return err
	}
	cur, err := f.read()
	if err != nil {
		return err
	}
	add, del := newBatch(), newBatch()
	for t, l := range f.layouts {
		if l == nil {
			continue // no IPv6 in this kernel
		}
		for _, s := range l.sets {
			a, d := diff(s, cur[t][s.Name], want[t][s.Name])
			add[t].add(s.Name, a...)
			del[t].add(s.Name, d...)
		}
	}
	if !add.empty() || !del.empty() {
		if err := f.queue(add, del); err != nil {
			return err
		}
		if err := f.flush("synchronising tables ip and ip6 " + TableName); err != nil {
			return err
		}
	}
	errs := []error{f.forgetUDPFlows(del)}
	for _, n := range desired.Networks {
		errs = append(errs, f.configureBridge(n))
	}
	return errors.Join(errs...)
}

// diff returns what to add and delete to turn cur into want. Interval sets are compared as
// whole intervals (start and end element together), since half an interval cannot be added
// or removed; other elements by key, value and comment.
func diff(s *nftables.Set, cur, want []nftables.SetElement) (add, del []nftables.SetElement) {
	if s.Interval {
		ci, wi := intervals(cur), intervals(want)
		have := map[string]bool{}
		for _, iv := range ci {
			have[iv.id()] = true
		}
		need := map[string]bool{}
		for _, iv := range wi {
			need[iv.id()] = true
			if !have[iv.id()] {
				add = append(add, iv.start, iv.end)
			}
		}
		for _, iv := range ci {
			if !need[iv.id()] {
				del = append(del, iv.start, iv.end)
			}
		}
		return add, del
	}
	id := func(el nftables.SetElement) string {
		return string(el.Key) + "\x00" + string(el.Val) + "\x00" + el.Comment
	}
	have := make(map[string]bool, len(cur))
	for _, el := range cur {
		have[id(el)] = true
	}
	need := make(map[string]bool, len(want))
	for _, el := range want {
		need[id(el)] = true
		if !have[id(el)] {
			add = append(add, el)
		}
	}
	for _, el := range cur {
		if !need[id(el)] {
			del = append(del, el)
		}
	}
	// A key whose value changed is deleted and added in the same transaction, in that order.
	return add, del
}

type ivl struct{ start, end nftables.SetElement }

func (iv ivl) id() string {
	return string(iv.start.Key) + "-" + string(iv.end.Key) + "-" + iv.start.Comment
}

// intervals pairs the start and end elements of an interval set. Intervals do not overlap, so
// in key order every start is followed by its end (an end sorts first on a tie, as an interval
// may end where the next begins).
func intervals(els []nftables.SetElement) []ivl {
	els = slices.Clone(els)
	slices.SortFunc(els, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out []ivl
	for i := 0; i < len(els); i++ {
		if els[i].IntervalEnd || i+1 >= len(els) || !els[i+1].IntervalEnd {
			continue // a stray end (nft's own 0.0.0.0 marker, say) or an open interval
		}
		out = append(out, ivl{els[i], els[i+1]})
		i++
	}
	return out
}

// Current reads back what cnet's two tables hold, as a State: networks sorted by bridge (their
// subnets of both families, IPv4 first, and ICC, Internal and Masquerade as the sets of either
// table say), ports of both tables sorted by protocol, host address, host port and container
// address.
func (f *Firewall) Current() (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, err := f.read()
	if err != nil {
		return State{}, err
	}
	nets := map[string]*Network{}
	get := func(br string) *Network {
		if nets[br] == nil {
			nets[br] = &Network{Bridge: br, ICC: true}
		}
		return nets[br]
	}
	name := func(b []byte) string { return string(bytes.TrimRight(b, "\x00")) }
	var st State
	for _, c := range cur {
		for _, el := range c[setBridges] {
			get(name(el.Key))
		}
		for _, el := range c[setNoICC] {
			get(name(el.Key[:16])).ICC = false
		}
		for _, el := range c[setInternal] {
			get(name(el.Key)).Internal = true
		}
		for _, iv := range intervals(c[setSubnets]) {
			n := get(iv.start.Comment)
			n.Subnets = append(n.Subnets, toPrefix(iv))
		}
		for _, iv := range intervals(c[setMasquerade]) {
			get(iv.start.Comment).Masquerade = true
		}
		for _, set := range []string{mapPortsAny, mapPortsIP} {
			for _, el := range c[set] {
				if p, ok := decodePort(set, el); ok {
					st.Ports = append(st.Ports, p)
				}
			}
		}
	}
	for _, n := range nets {
		st.Networks = append(st.Networks, *n)
	}
	slices.SortFunc(st.Networks, func(a, b Network) int { return cmp.Compare(a.Bridge, b.Bridge) })
	slices.SortFunc(st.Ports, func(a, b Published) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), a.HostIP.Compare(b.HostIP), cmp.Compare(a.HostPort, b.HostPort),
			a.ContainerIP.Compare(b.ContainerIP))
	})
	return st, nil
}

// toPrefix turns an interval back into the prefix it was made from: the bits its first and
// last address (the one before the end) share.
func toPrefix(iv ivl) netip.Prefix {
	start, _ := netip.AddrFromSlice(iv.start.Key)
	end, _ := netip.AddrFromSlice(iv.end.Key)
	s, l := start.AsSlice(), end.Prev().AsSlice()
	bits := 0
	for i := 0; i < len(s) && i < len(l); i++ {
		if x := s[i] ^ l[i]; x != 0 {
			bits += mathbits.LeadingZeros8(x)
			break
		}
		bits += 8
	}
	return netip.PrefixFrom(start, bits)
}
