package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
)

// A remote endpoint is two kernel entries on the network's VXLAN device:
//   - an FDB entry (family AF_BRIDGE, NTF_SELF, permanent): its MAC is behind that VTEP, which
//     is where the device sends frames for it;
//   - a neighbour entry (AF_INET, permanent): its address has that MAC, which is how the
//     device answers ARP for it (proxy) without flooding the request; on networks with IPv6
//     a second one (AF_INET6) for its IPv6 address, with which the device's proxy answers
//     neighbour solicitations the same way.
//
// SyncPeers compares both tables with the wanted set and writes only the difference. Writes
// use replace semantics (NeighSet: NLM_F_CREATE|NLM_F_REPLACE), never exclusive adds, so an
// entry someone or something else wrote is overwritten instead of making the sync fail with
// EEXIST (moby#53663). Entries that are not wanted are deleted, the all-zero FDB entry (a
// default destination that would flood BUM traffic to a VTEP) included.

// want is the kernel state a set of peers asks for.
type want struct {
	fdb   map[string]netip.Addr // MAC → VTEP
	neigh map[netip.Addr]string // address → MAC
	vteps []netip.Addr          // distinct VTEPs, sorted: the allowlist for the VNI
}

// wanted turns peers into the entries to program. Peers that cannot be programmed (a bad
// address, MAC or VTEP, this host's own VTEP, or a MAC or address another peer already
// claimed) are left out and reported, so that one bad record does not block the rest.
func wanted(peers []driver.Peer, self netip.Addr) (want, error) {
	w := want{fdb: map[string]netip.Addr{}, neigh: map[netip.Addr]string{}}
	var errs []string
	seen := map[netip.Addr]bool{}
	for _, p := range peers {
		addr, vtep := p.Address.Unmap(), p.VTEP.Unmap()
		what := fmt.Sprintf("peer %s (endpoint %s on host %s, VTEP %s)", addr, p.EndpointID, p.Host, vtep)
		switch {
		case !addr.Is4():
			errs = append(errs, what+": the address is not IPv4")
			continue
		case p.Address6.IsValid() && (!p.Address6.Is6() || p.Address6.Is4In6()):
			errs = append(errs, fmt.Sprintf("%s: %s is not an IPv6 address", what, p.Address6))
			continue
		case len(p.MAC) != 6 || p.MAC[0]&1 != 0 || bytes.Equal(p.MAC, make([]byte, 6)):
			errs = append(errs, fmt.Sprintf("%s: %q is not a unicast Ethernet MAC", what, p.MAC))
			continue
		case !vtep.Is4() || vtep.IsUnspecified():
			errs = append(errs, what+": the VTEP is not an IPv4 address")
			continue
		case vtep == self:
			errs = append(errs, what+": the VTEP is this host's own")
			continue
		}
		mac := p.MAC.String()
		if v, dup := w.fdb[mac]; dup && v != vtep {
			errs = append(errs, fmt.Sprintf("%s: MAC %s is already behind VTEP %s", what, mac, v))
			continue
		}
		if m, dup := w.neigh[addr]; dup && m != mac {
			errs = append(errs, fmt.Sprintf("%s: address %s already has MAC %s", what, addr, m))
			continue
		}
		if m, dup := w.neigh[p.Address6]; p.Address6.IsValid() && dup && m != mac {
			errs = append(errs, fmt.Sprintf("%s: address %s already has MAC %s", what, p.Address6, m))
			continue
		}
		w.fdb[mac], w.neigh[addr] = vtep, mac
		if p.Address6.IsValid() {
			w.neigh[p.Address6] = mac
		}
		if !seen[vtep] {
			seen[vtep] = true
			w.vteps = append(w.vteps, vtep)
		}
	}
	slices.SortFunc(w.vteps, netip.Addr.Compare)
	if len(errs) > 0 {
		return w, errdefs.Invalid("peers left out: %s", strings.Join(errs, "; "))
	}
	return w, nil
}

// fdbRemote is one destination of an FDB entry as dumped (an entry lists one per message).
type fdbRemote struct {
	dst   netip.Addr
	vni   int
	state int
}

// fdbPlan decides, from the device's FDB entries (its own, NTF_SELF, grouped by MAC), which
// MACs to delete whole and which to write. An entry is right when it has exactly one
// destination, the wanted VTEP, on the device's own VNI, and is permanent; anything else is
// rewritten: deleted first when it has destinations NeighSet would not replace (extra ones
// appended by hand), then set.
func fdbPlan(have map[string][]fdbRemote, w map[string]netip.Addr) (del, set []string) {
	for mac, rs := range have {
		vtep, ok := w[mac]
		if !ok || len(rs) > 1 {
			del = append(del, mac)
		}
		if ok && (len(rs) != 1 || rs[0].dst != vtep || rs[0].vni != 0 || rs[0].state&unix.NUD_PERMANENT == 0) {
			set = append(set, mac)
		}
	}
	for mac := range w {
		if _, ok := have[mac]; !ok {
			set = append(set, mac)
		}
	}
	slices.Sort(del)
	slices.Sort(set)
	return del, set
}

// neighPlan does the same for neighbour entries (address → MAC and state).
func neighPlan(have map[netip.Addr]netlink.Neigh, w map[netip.Addr]string) (del, set []netip.Addr) {
	for a, n := range have {
		mac, ok := w[a]
		if !ok {
			del = append(del, a)
		} else if n.HardwareAddr.String() != mac || n.State&unix.NUD_PERMANENT == 0 {
			set = append(set, a)
		}
	}
	for a := range w {
		if _, ok := have[a]; !ok {
			set = append(set, a)
		}
	}
	slices.SortFunc(del, netip.Addr.Compare)
	slices.SortFunc(set, netip.Addr.Compare)
	return del, set
}

// SyncPeers implements driver.PeerSyncer: the network's devices are made to exist, the VXLAN
// device's FDB and neighbour tables to hold exactly peers, and the allowlist to admit exactly
// the peers' VTEPs for this VNI. A peer that cannot be programmed is reported after the others
// were.
func (d *Driver) SyncPeers(n driver.Network, peers []driver.Peer) error {
	if err := d.needVTEP(); err != nil {
		return err
	}
	w, werr := wanted(peers, d.cfg.VTEP)
	if err := d.ensureDevices(n); err != nil {
		return err
	}
	idx, err := vxlanIndex(n)
	if err != nil {
		return err
	}
	fdb, neigh, err := kernelEntries(idx, VXLANName(n))
	if err != nil {
		return err
	}
	name := VXLANName(n)
	fdel, fset := fdbPlan(fdb, w.fdb)
	for _, mac := range fdel {
		if err := delFDB(idx, mac); err != nil {
			return fmt.Errorf("removing stale FDB entry %s from %s: %w", mac, name, err)
		}
	}
	for _, mac := range fset {
		hw, _ := net.ParseMAC(mac)
		e := &netlink.Neigh{LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, HardwareAddr: hw, IP: w.fdb[mac].AsSlice()}
		if err := netlink.NeighSet(e); err != nil {
			return fmt.Errorf("writing FDB entry %s dst %s on %s: %w", mac, w.fdb[mac], name, err)
		}
	}
	// A neighbour entry that cannot be written (an IPv6 one on a host that refuses them, say)
	// costs that address its proxy answers, not the network: the allowlist is still synced
	// and the failure reported after it.
	var nerrs []error
	ndel, nset := neighPlan(neigh, w.neigh)
	for _, a := range ndel {
		err := netlink.NeighDel(&netlink.Neigh{LinkIndex: idx, Family: family(a), IP: a.AsSlice()})
		if err != nil && !errors.Is(err, unix.ENOENT) {
			nerrs = append(nerrs, fmt.Errorf("removing stale neighbour entry %s from %s: %w", a, name, err))
		}
	}
	for _, a := range nset {
		hw, _ := net.ParseMAC(w.neigh[a])
		e := &netlink.Neigh{LinkIndex: idx, Family: family(a), State: netlink.NUD_PERMANENT,
			IP: a.AsSlice(), HardwareAddr: hw}
		if err := netlink.NeighSet(e); err != nil {
			nerrs = append(nerrs, fmt.Errorf("writing neighbour entry %s lladdr %s on %s: %w", a, hw, name, err))
		}
	}
	if err := d.syncAllowlist(n.SegmentID, w.vteps); err != nil {
		return errors.Join(append(nerrs, err)...)
	}
	return errors.Join(append(nerrs, werr)...)
}

// kernelEntries reads the VXLAN device's own FDB entries (by MAC) and neighbour entries (by
// address).
func kernelEntries(idx int, name string) (map[string][]fdbRemote, map[netip.Addr]netlink.Neigh, error) {
	fl, err := nldump.NeighList(nil, idx, unix.AF_BRIDGE)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the FDB of %s: %w", name, err)
	}
	fdb := map[string][]fdbRemote{}
	for _, e := range fl {
		// The bridge's own entries for this port (NTF_MASTER) are the bridge's business.
		if e.LinkIndex != idx || e.Flags&netlink.NTF_SELF == 0 || len(e.HardwareAddr) != 6 {
			continue
		}
		dst, _ := netip.AddrFromSlice(e.IP)
		mac := e.HardwareAddr.String()
		fdb[mac] = append(fdb[mac], fdbRemote{dst: dst.Unmap(), vni: e.VNI, state: e.State})
	}
	neigh := map[netip.Addr]netlink.Neigh{}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		ns, err := nldump.NeighList(nil, idx, fam)
		if err != nil {
			return nil, nil, fmt.Errorf("listing the neighbour entries of %s: %w", name, err)
		}
		for _, e := range ns {
			// Only permanent entries are ours: the kernel's own (learnt, or the device's
			// link-local neighbours) come and go by themselves.
			if a, ok := netip.AddrFromSlice(e.IP); ok && e.LinkIndex == idx && (fam == unix.AF_INET || e.State&unix.NUD_PERMANENT != 0) {
				neigh[a.Unmap()] = e
			}
		}
	}
	return fdb, neigh, nil
}

// family is a's address family as netlink names it.
func family(a netip.Addr) int {
	if a.Is6() && !a.Is4In6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// delFDB deletes the device's whole FDB entry for mac, every destination of it: the request
// carries no NDA_DST (which the netlink library always adds), so the kernel matches the MAC
// alone, whatever port, VNI or destinations the entry was given.
func delFDB(idx int, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	req := nl.NewNetlinkRequest(unix.RTM_DELNEIGH, unix.NLM_F_ACK)
	req.AddData(&netlink.Ndmsg{Family: unix.AF_BRIDGE, Index: uint32(idx), Flags: netlink.NTF_SELF})
	req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, hw))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// KernelPeers implements driver.PeerSyncer: one Peer per MAC in the VXLAN device's FDB or
// neighbour table, with the VTEP of its (first) FDB destination and the address whose
// neighbour entry has that MAC. The all-zero MAC (a default destination) is no peer and is
// left out.
func (d *Driver) KernelPeers(n driver.Network) ([]driver.Peer, error) {
	idx, err := vxlanIndex(n)
	if err != nil {
		return nil, err
	}
	fdb, neigh, err := kernelEntries(idx, VXLANName(n))
	if err != nil {
		return nil, err
	}
	return kernelPeers(fdb, neigh), nil
}

func kernelPeers(fdb map[string][]fdbRemote, neigh map[netip.Addr]netlink.Neigh) []driver.Peer {
	byMAC := map[string]*driver.Peer{}
	peer := func(mac string) *driver.Peer {
		if p := byMAC[mac]; p != nil {
			return p
		}
		hw, _ := net.ParseMAC(mac)
		p := &driver.Peer{MAC: hw}
		byMAC[mac] = p
		return p
	}
	const zero = "00:00:00:00:00:00"
	for mac, rs := range fdb {
		if mac != zero && len(rs) > 0 {
			peer(mac).VTEP = rs[0].dst
		}
	}
	for a, e := range neigh {
		if len(e.HardwareAddr) == 6 && e.HardwareAddr.String() != zero {
			if a.Is4() {
				peer(e.HardwareAddr.String()).Address = a
			} else {
				peer(e.HardwareAddr.String()).Address6 = a
			}
		}
	}
	out := make([]driver.Peer, 0, len(byMAC))
	for _, p := range byMAC {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b driver.Peer) int { return bytes.Compare(a.MAC, b.MAC) })
	return out
}
