package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/ipam"
)

// The cluster-wide default pool: global networks created without --subnet get a /24 of
// 10.0.0.0/8, as Docker Swarm's default address pool gives them. Local default pools are
// 172.17.0.0/16-172.31.0.0/16 and 192.168.0.0/16, so the two never meet.
var (
	DefaultPool     = netip.MustParsePrefix("10.0.0.0/8")
	DefaultPoolBits = 24
)

// FirstSegment is the lowest VNI handed out; Docker's overlay starts its VNIs at 4096 too,
// which leaves the low ones to hand-made VXLAN segments.
const FirstSegment = 4096

// maxSegment is the largest 24-bit VNI.
const maxSegment = 1<<24 - 1

// Build turns the claims the store chose into the network's record; it is called again if a
// concurrent creation took them first.
type Build func(segment uint32, subnets []netip.Prefix) (spec []byte, err error)

// CreateNetwork claims a name, a VNI and subnets for a global network and writes its record,
// all in one transaction: two hosts creating networks at once never share a name, a VNI or
// an overlapping subnet. subnets are the user's (--subnet), or empty for one /24 of
// DefaultPool that overlaps none of avoid (this host's routes and local networks) nor any
// other global network's subnet.
func (s *Store) CreateNetwork(ctx context.Context, id, name string, subnets []netip.Prefix, avoid []netip.Prefix, build Build) (NetworkRecord, error) {
	var rec NetworkRecord
	err := s.op(ctx, "creating network "+name, func(ctx context.Context) error {
		for attempt := 0; attempt < 20; attempt++ {
			ok, err := s.tryCreate(ctx, id, name, subnets, avoid, build, &rec)
			if err != nil || ok {
				return err
			}
		}
		return errdefs.Conflict("creating network %s: other hosts kept taking the same VNI or subnet; try again", name)
	})
	return rec, err
}

func (s *Store) tryCreate(ctx context.Context, id, name string, want, avoid []netip.Prefix, build Build, out *NetworkRecord) (bool, error) {
	segs, err := s.cli.Get(ctx, prefix+"segments/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return false, err
	}
	rev := segs.Header.Revision
	subs, err := s.cli.Get(ctx, prefix+"subnets/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	if err != nil {
		return false, err
	}
	vni, err := freeSegment(segs.Kvs)
	if err != nil {
		return false, err
	}
	var claimed []netip.Prefix
	for _, kv := range subs.Kvs {
		k := strings.TrimPrefix(string(kv.Key), prefix+"subnets/")
		if p, err := netip.ParsePrefix(strings.Replace(k, "-", "/", 1)); err == nil {
			claimed = append(claimed, p)
		}
	}
	for _, p := range want {
		if err := ipam.CheckOverlap(p, claimed); err != nil {
			return false, errdefs.Conflict("%w (a global network of the cluster has it)", err)
		}
	}
	subnets := want
	if !slices.ContainsFunc(want, func(p netip.Prefix) bool { return p.Addr().Is4() }) {
		// Every global network has IPv4: without an IPv4 subnet given, a default one comes
		// first (the IPv6 ones given follow it).
		p, err := pickDefault(append(claimed, avoid...))
		if err != nil {
			return false, err
		}
		subnets = append([]netip.Prefix{p}, want...)
	}
	spec, err := build(vni, subnets)
	if err != nil {
		return false, err
	}
	rec := NetworkRecord{ID: id, Name: name, SegmentID: vni, Subnets: subnets, Spec: spec}
	data, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	conds := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(nameKey(name)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(segmentKey(vni)), "=", 0),
		// No subnet was claimed since the listing: a new one could overlap ours.
		clientv3.Compare(clientv3.ModRevision(prefix+"subnets/"), "<", rev+1).WithPrefix(),
	}
	ops := []clientv3.Op{
		clientv3.OpPut(networkKey(id), string(data)),
		clientv3.OpPut(nameKey(name), id),
		clientv3.OpPut(segmentKey(vni), id),
	}
	for _, p := range subnets {
		conds = append(conds, clientv3.Compare(clientv3.CreateRevision(subnetKey(p)), "=", 0))
		ops = append(ops, clientv3.OpPut(subnetKey(p), id))
	}
	resp, err := s.cli.Txn(ctx).If(conds...).Then(ops...).Else(clientv3.OpGet(nameKey(name))).Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		*out = rec
		out.Revision = resp.Header.Revision
		return true, nil
	}
	if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
		if string(r.Kvs[0].Value) == id {
			// An earlier attempt of this very creation committed (its answer was lost):
			// the record in the store is ours.
			got, err := s.cli.Get(ctx, networkKey(id))
			if err != nil {
				return false, err
			}
			if len(got.Kvs) == 1 && json.Unmarshal(got.Kvs[0].Value, out) == nil {
				out.Revision = got.Header.Revision
				return true, nil
			}
		}
		return false, errdefs.Conflict("network with name %s already exists in the cluster", name)
	}
	return false, nil
}

// freeSegment is the lowest VNI from FirstSegment that no network holds.
func freeSegment(kvs []*mvccpb.KeyValue) (uint32, error) {
	used := map[uint32]bool{}
	for _, kv := range kvs {
		k := strings.TrimPrefix(string(kv.Key), prefix+"segments/")
		if n, err := strconv.ParseUint(k, 10, 32); err == nil {
			used[uint32(n)] = true
		}
	}
	for v := uint32(FirstSegment); v <= maxSegment; v++ {
		if !used[v] {
			return v, nil
		}
	}
	return 0, errdefs.Conflict("every VXLAN segment ID is taken")
}

// pickDefault is the first /24 of DefaultPool that overlaps none of avoid.
func pickDefault(avoid []netip.Prefix) (netip.Prefix, error) {
	step := uint32(1) << (32 - DefaultPoolBits)
	base := DefaultPool.Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	count := uint32(1) << (DefaultPoolBits - DefaultPool.Bits())
	for i := uint32(0); i < count; i++ {
		v := start + i*step
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), DefaultPoolBits)
		if ipam.CheckOverlap(p, avoid) == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, errdefs.Conflict("the cluster's default address pool %s is exhausted: give the network a --subnet", DefaultPool)
}

// DeleteNetwork removes a global network and every claim it holds, in one transaction that is
// refused while any host has an endpoint on it: a host joining at the same moment either gets
// in first (and the removal is refused) or finds the network gone. It returns the store's
// revision after the removal: a view of the store older than it still shows the network.
func (s *Store) DeleteNetwork(ctx context.Context, rec NetworkRecord) (rev int64, err error) {
	return rev, s.op(ctx, "removing network "+rec.Name, func(ctx context.Context) error {
		ops := []clientv3.Op{
			clientv3.OpDelete(networkKey(rec.ID)),
			clientv3.OpDelete(segmentKey(rec.SegmentID)),
			clientv3.OpDelete(addrPrefix(rec.ID), clientv3.WithPrefix()),
		}
		for _, p := range rec.Subnets {
			ops = append(ops, clientv3.OpDelete(subnetKey(p)))
		}
		resp, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(endpointPrefix(rec.ID)), "=", 0).WithPrefix(),
			clientv3.Compare(clientv3.Value(nameKey(rec.Name)), "=", rec.ID),
		).Then(append(ops, clientv3.OpDelete(nameKey(rec.Name)))...).Else(
			clientv3.OpGet(endpointPrefix(rec.ID), clientv3.WithPrefix(), clientv3.WithLimit(1)),
		).Commit()
		if err != nil {
			return err
		}
		rev = resp.Header.Revision
		if resp.Succeeded {
			return nil
		}
		if r := resp.Responses[0].GetResponseRange(); r != nil && len(r.Kvs) > 0 {
			var ep EndpointRecord
			_ = json.Unmarshal(r.Kvs[0].Value, &ep)
			return errdefs.Forbidden("error while removing network: network %s id %s has active endpoints (on host %s); disconnect or remove them first",
				rec.Name, rec.ID, ep.HostName)
		}
		// The name no longer points at this network: it is already gone (removed from
		// another host). Clear what may remain under its own ID; its VNI and subnets may
		// belong to a newer network by now and are left alone.
		resp, err = s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(endpointPrefix(rec.ID)), "=", 0).WithPrefix()).
			Then(clientv3.OpDelete(networkKey(rec.ID)), clientv3.OpDelete(addrPrefix(rec.ID), clientv3.WithPrefix())).Commit()
		if err != nil {
			return fmt.Errorf("clearing the remains of network %s: %w", rec.Name, err)
		}
		rev = resp.Header.Revision
		return nil
	})
}
