package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The VXLAN allowlist, as `nft list table ip cnet_overlay` shows it:
//
//	table ip cnet_overlay {
//		set members { type ipv4_addr . mark; }   # VTEP . VNI<<8
//		chain input {
//			type filter hook input priority filter;
//			udp dport 4789 ip saddr . @th,96,32 != @members counter drop
//		}
//	}
//
// The key is the datagram's source address concatenated with the 32-bit word at transport
// offset 12: 8 bytes of UDP header, then 4 into the VXLAN header, where the 24-bit VNI sits
// followed by a reserved byte that must be zero (the kernel drops VXLAN packets whose reserved
// bits are set, so requiring zero here refuses nothing it would accept). One concatenated set
// serves every network, and the lookup is one hash probe whatever the number of networks.
// The second field is typed "mark" (32 bits) only so that the nft command can print the set:
// an untyped integer in a concatenation has no length it could decode, and nft aborts on
// `list ruleset`. An element reads VTEP . 0x00VVVVVV00 (the VNI shifted by 8).
//
// The table is family ip, not inet: cnet's VXLAN devices are IPv4 only and their socket never
// sees IPv6, so dropping IPv6 datagrams to 4789 would protect nothing and could break someone
// else's tunnels. The table is the driver's own, apart from the firewall's table ip cnet, so
// that the firewall's rebuilds never touch it and the set's elements survive daemon restarts:
// Start creates what is missing and never flushes elements, since a restarting daemon must not
// cut traffic between containers that keep running.
const (
	allowTable = "cnet_overlay"
	allowSet   = "members"
	allowChain = "input"
	ruleTag    = "cnet-overlay/1: vxlan from non-members"
)

var allowKeyType = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeMark)

// allowlistOn: the allowlist exists only on a host with a VTEP (a cluster member).
func (d *Driver) allowlistOn() bool { return d.needVTEP() == nil }

type allowObjs struct {
	table *nftables.Table
	set   *nftables.Set
	chain *nftables.Chain
}

func allowLayout() allowObjs {
	t := &nftables.Table{Name: allowTable, Family: nftables.TableFamilyIPv4}
	// A fixed ID names the set within a batch and keeps AddSet off the library's global
	// counter, which is not safe for concurrent use.
	s := &nftables.Set{Table: t, Name: allowSet, ID: 1, KeyType: allowKeyType, Concatenation: true,
		KeyByteOrder: binaryutil.BigEndian}
	c := &nftables.Chain{Table: t, Name: allowChain, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter}
	return allowObjs{t, s, c}
}

// dropRule is `udp dport 4789 ip saddr . @th,96,32 != @members counter drop`.
func dropRule(o allowObjs) *nftables.Rule {
	return &nftables.Rule{Table: o.table, Chain: o.chain, UserData: userdata.AppendString(nil, userdata.TypeComment, ruleTag),
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG_1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: unix.NFT_REG_1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: binaryutil.BigEndian.PutUint16(VXLANPort)},
			&expr.Payload{DestRegister: unix.NFT_REG_1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Payload{DestRegister: unix.NFT_REG32_01, Base: expr.PayloadBaseTransportHeader, Offset: 12, Len: 4},
			&expr.Lookup{SourceRegister: unix.NFT_REG_1, SetName: allowSet, SetID: 1, Invert: true},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}}
}

// allowKey is the set key of (vtep, vni): the address, then the VNI in the top 24 bits of a
// big-endian word, as the VXLAN header carries it.
func allowKey(vtep netip.Addr, vni uint32) []byte {
	a := vtep.As4()
	return append(a[:], byte(vni>>16), byte(vni>>8), byte(vni), 0)
}

// keyVNI is the VNI of a set key, and whether the key has the expected shape.
func keyVNI(key []byte) (uint32, bool) {
	if len(key) != 8 || key[7] != 0 {
		return 0, false
	}
	return uint32(key[4])<<16 | uint32(key[5])<<8 | uint32(key[6]), true
}

// ensureAllowlist creates the table, set and chain if missing and makes the chain hold exactly
// the drop rule. Elements already in the set stay. A set or chain of another shape (another
// cnet version, or a hand-made change) makes it rebuild the table: the elements are then lost
// until each network's next SyncPeers.
func (d *Driver) ensureAllowlist() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ensureAllowlist()
}

func ensureAllowlist() error {
	o := allowLayout()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening a netlink connection to nftables: %w", err)
	}
	ok, err := layoutMatches(c, o)
	if err != nil {
		return err
	}
	if !ok {
		c.DelTable(o.table)
		// ENOENT: someone removed it meanwhile, which is what was wanted.
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing nftables table ip %s of another layout: %w", allowTable, err)
		}
	}
	c.AddTable(o.table)
	if err := c.AddSet(o.set, nil); err != nil {
		return fmt.Errorf("creating nftables set %s: %w", allowSet, err)
	}
	c.AddChain(o.chain)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("creating nftables table ip %s (the VXLAN allowlist; is nf_tables available?): %w", allowTable, err)
	}
	rules, err := c.GetRules(o.table, o.chain)
	if err != nil {
		return fmt.Errorf("listing the rules of chain %s of table ip %s: %w", allowChain, allowTable, err)
	}
	if len(rules) == 1 {
		if tag, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment); tag == ruleTag {
			return nil
		}
	}
	c.FlushChain(o.chain)
	c.AddRule(dropRule(o))
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing the VXLAN allowlist rule in table ip %s: %w", allowTable, err)
	}
	return nil
}

// layoutMatches reports whether the table is missing (true: AddTable makes it right) or has
// our set and chain as this version defines them.
func layoutMatches(c *nftables.Conn, o allowObjs) (bool, error) {
	if _, err := c.ListTableOfFamily(allowTable, nftables.TableFamilyIPv4); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true, nil
		}
		return false, fmt.Errorf("looking up nftables table ip %s: %w", allowTable, err)
	}
	sets, err := c.GetSets(o.table)
	if err != nil {
		return false, fmt.Errorf("listing the sets of table ip %s: %w", allowTable, err)
	}
	for _, s := range sets {
		if s.Name != allowSet || s.KeyType.Bytes != allowKeyType.Bytes || s.Interval || s.IsMap {
			return false, nil
		}
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, fmt.Errorf("listing nftables chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != allowTable {
			continue
		}
		if ch.Name != allowChain || ch.Hooknum == nil || *ch.Hooknum != *o.chain.Hooknum ||
			ch.Priority == nil || *ch.Priority != *o.chain.Priority || ch.Type != o.chain.Type {
			return false, nil
		}
	}
	return true, nil
}

// syncAllowlist makes the set's elements for vni be exactly vteps (none: the network's
// elements are removed), in one transaction. The table is made if missing, so a flushed
// ruleset heals on the next SyncPeers.
func (d *Driver) syncAllowlist(vni uint32, vteps []netip.Addr) error {
	if !d.allowlistOn() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ensureAllowlist(); err != nil {
		return err
	}
	o := allowLayout()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("opening a netlink connection to nftables: %w", err)
	}
	els, err := c.GetSetElements(o.set)
	if err != nil {
		return fmt.Errorf("listing the VXLAN allowlist (set %s of table ip %s): %w", allowSet, allowTable, err)
	}
	add, del := allowDiff(els, vni, vteps)
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	if len(del) > 0 {
		if err := c.SetDeleteElements(o.set, del); err != nil {
			return fmt.Errorf("removing VTEPs of VNI %d from the VXLAN allowlist: %w", vni, err)
		}
	}
	if len(add) > 0 {
		if err := c.SetAddElements(o.set, add); err != nil {
			return fmt.Errorf("adding VTEPs of VNI %d to the VXLAN allowlist: %w", vni, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("updating the VXLAN allowlist of VNI %d in table ip %s: %w", vni, allowTable, err)
	}
	return nil
}

// allowDiff is what to add to and delete from the set so that its elements for vni are
// exactly vteps; elements of other VNIs are left alone, malformed ones are deleted.
func allowDiff(have []nftables.SetElement, vni uint32, vteps []netip.Addr) (add, del []nftables.SetElement) {
	want := make([][]byte, 0, len(vteps))
	for _, v := range vteps {
		want = append(want, allowKey(v, vni))
	}
	var kept [][]byte
	for _, e := range have {
		k, ok := keyVNI(e.Key)
		switch {
		case !ok:
			del = append(del, nftables.SetElement{Key: e.Key})
		case k != vni:
		case slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, e.Key) }):
			kept = append(kept, e.Key)
		default:
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	for _, w := range want {
		if !slices.ContainsFunc(kept, func(k []byte) bool { return bytes.Equal(k, w) }) {
			add = append(add, nftables.SetElement{Key: w})
		}
	}
	return add, del
}
