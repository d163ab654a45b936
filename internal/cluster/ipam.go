package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/ipam"
)

// allocator is the IPAM of global networks (ipam.Allocator): pools are the network's record
// (claimed with it by CreateNetwork), addresses are claimed one by one in the store with a
// compare-and-swap, so that hosts allocating at once never get the same one. An address given
// back is marked cooldown under a lease of Config.Cooldown and only then deleted.
//
// held is what this daemon handed out and has not given back. Its mutex is held across the
// store calls of one request (bounded by the store's deadline): the reconcile pass takes it
// too, so that it never sees a claim whose holder is not recorded yet.
type allocator struct {
	s     *Store
	mu    sync.Mutex
	pools map[ipam.PoolID]ipam.Config
	held  map[string]map[netip.Addr]bool // network ID → addresses
}

func newAllocator(s *Store) *allocator {
	return &allocator{s: s, pools: map[ipam.PoolID]ipam.Config{}, held: map[string]map[netip.Addr]bool{}}
}

// Allocator is the IPAM of this cluster's global networks.
func (s *Store) Allocator() ipam.Allocator { return s.ipam }

func poolNetwork(id ipam.PoolID) string {
	n, _, _ := strings.Cut(string(id), "/")
	return n
}

// RequestPool implements ipam.Allocator. The subnet was claimed cluster-wide with the
// network (CreateNetwork); here the pool is only checked and remembered, so that a host
// restarting while the store is down still opens its networks.
func (a *allocator) RequestPool(req ipam.PoolRequest) (ipam.PoolInfo, error) {
	if !req.Subnet.IsValid() {
		return ipam.PoolInfo{}, fmt.Errorf("a global network's subnet comes from the cluster store: %w", ipam.ErrInvalidConfig)
	}
	p, err := ipam.NewPool(req.Config)
	if err != nil {
		return ipam.PoolInfo{}, err
	}
	id := ipam.PoolID(req.Owner + "/" + req.Subnet.String())
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools[id] = req.Config
	return ipam.PoolInfo{ID: id, Subnet: p.Subnet(), IPRange: p.IPRange(), Gateway: p.Gateway()}, nil
}

// ReleasePool implements ipam.Allocator; the claims go with the network's record.
func (a *allocator) ReleasePool(id ipam.PoolID) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pools, id)
	delete(a.held, poolNetwork(id))
	return nil
}

// RequestAddress implements ipam.Allocator.
func (a *allocator) RequestAddress(id ipam.PoolID, want netip.Addr) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg, ok := a.pools[id]
	if !ok {
		return netip.Addr{}, fmt.Errorf("requesting an address of pool %s: %w", id, ipam.ErrUnknownPool)
	}
	netID := poolNetwork(id)
	var got netip.Addr
	err := a.s.op(context.Background(), "allocating an address", func(ctx context.Context) error {
		var err error
		if want.IsValid() {
			got, err = a.claimStatic(ctx, netID, cfg, want.Unmap())
		} else {
			got, err = a.claimNext(ctx, netID, cfg)
		}
		return refusal(err)
	})
	if err != nil {
		return netip.Addr{}, err
	}
	a.hold(netID, got)
	return got, nil
}

// refusal gives the allocator's own answers (the address is taken, reserved, outside the
// subnet, the pool is exhausted or its network gone) their kind, so that op passes them on as
// they are instead of reporting them as a failure of the cluster store.
func refusal(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ipam.ErrInUse), errors.Is(err, ipam.ErrPoolExhausted):
		return errdefs.Conflict("%w", err)
	case errors.Is(err, ipam.ErrUnknownPool):
		return errdefs.NotFound("%w", err)
	case errors.Is(err, ipam.ErrReserved), errors.Is(err, ipam.ErrOutsideSubnet), errors.Is(err, ipam.ErrInvalidConfig):
		return errdefs.Invalid("%w", err)
	}
	return err
}

func (a *allocator) hold(netID string, addr netip.Addr) {
	if a.held[netID] == nil {
		a.held[netID] = map[netip.Addr]bool{}
	}
	a.held[netID][addr] = true
}

// claimStatic takes want (--ip): it must be a usable address of the pool and unclaimed, or
// claimed by this host for an address it no longer holds (its own leftover).
func (a *allocator) claimStatic(ctx context.Context, netID string, cfg ipam.Config, want netip.Addr) (netip.Addr, error) {
	if a.held[netID][want] {
		return netip.Addr{}, fmt.Errorf("cannot assign %s: %w; pick another --ip or disconnect the container that has it", want, ipam.ErrInUse)
	}
	p, err := ipam.NewPool(cfg)
	if err != nil {
		return netip.Addr{}, err
	}
	if err := p.AllocateStatic(want); err != nil {
		return netip.Addr{}, err
	}
	ok, holder, err := a.claim(ctx, netID, want)
	if err != nil {
		return netip.Addr{}, err
	}
	if !ok {
		return netip.Addr{}, fmt.Errorf("cannot assign %s: %w (%s); pick another --ip", want, ipam.ErrInUse, holder)
	}
	return want, nil
}

// claimNext takes the lowest address of the pool no host holds, retrying when another host
// takes the same one first.
//
// The candidates skip every claim of the watch's copy of the store, so that the one write is
// usually the only round trip (the claim's compare-and-swap, not the copy, is what makes an
// address unique: a copy a little behind costs a retry). Before the first listing, the claims
// are read from etcd.
func (a *allocator) claimNext(ctx context.Context, netID string, cfg ipam.Config) (netip.Addr, error) {
	keys, synced := a.s.cachedKeys(addrPrefix(netID))
	if !synced {
		resp, err := a.s.cli.Get(ctx, addrPrefix(netID), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return netip.Addr{}, err
		}
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
	}
	p, err := ipam.NewPool(cfg)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, k := range keys {
		if x, err := netip.ParseAddr(strings.TrimPrefix(k, addrPrefix(netID))); err == nil {
			_ = p.AllocateStatic(x) // out of the pool or reserved: not a candidate anyway
		}
	}
	for {
		cand, err := p.Allocate()
		if err != nil {
			return netip.Addr{}, err
		}
		if a.held[netID][cand] {
			continue
		}
		ok, _, err := a.claim(ctx, netID, cand)
		if err != nil {
			return netip.Addr{}, err
		}
		if ok {
			return cand, nil
		}
	}
}

// claim writes addr's claim for this host unless another host holds it or it cools down. A
// claim this host already has (a leftover of a crash) is taken over.
func (a *allocator) claim(ctx context.Context, netID string, addr netip.Addr) (bool, string, error) {
	k := addrKey(netID, addr)
	mine := ownerValue(a.s.cfg.HostID)
	resp, err := a.s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0), clientv3.Compare(clientv3.CreateRevision(networkKey(netID)), ">", 0)).
		Then(clientv3.OpPut(k, mine)).
		Else(clientv3.OpGet(k), clientv3.OpGet(networkKey(netID), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return false, "", err
	}
	if resp.Succeeded {
		return true, "", nil
	}
	if r := resp.Responses[1].GetResponseRange(); r == nil || len(r.Kvs) == 0 {
		return false, "", fmt.Errorf("network %s no longer exists in the cluster: %w", netID[:12], ipam.ErrUnknownPool)
	}
	r := resp.Responses[0].GetResponseRange()
	if r == nil || len(r.Kvs) == 0 {
		return false, "released a moment ago", nil
	}
	switch v := string(r.Kvs[0].Value); v {
	case mine:
		return true, "", nil
	case cooldownValue:
		return false, "released recently and cooling down", nil
	default:
		return false, "held by a container on another host", nil
	}
}

// ReleaseAddress implements ipam.Allocator: the claim becomes a cooldown mark that expires
// by itself. If the store cannot be reached, the address stays claimed by this host and the
// reconcile pass releases it later.
func (a *allocator) ReleaseAddress(id ipam.PoolID, addr netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	netID := poolNetwork(id)
	delete(a.held[netID], addr)
	return a.s.op(context.Background(), "releasing address "+addr.String(), func(ctx context.Context) error {
		return a.cooldown(ctx, addrKey(netID, addr))
	})
}

func (a *allocator) cooldown(ctx context.Context, key string) error {
	g, err := a.s.cli.Grant(ctx, int64(a.s.cfg.Cooldown.Seconds()))
	if err != nil {
		return err
	}
	_, err = a.s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(key), "=", ownerValue(a.s.cfg.HostID))).
		Then(clientv3.OpPut(key, cooldownValue, clientv3.WithLease(g.ID))).Commit()
	return err
}

// RestoreAddress marks an address this host's records hold (after a restart) as held again,
// without asking the store, which may be down: the reconcile pass confirms the claim.
func (a *allocator) RestoreAddress(id ipam.PoolID, addr netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pools[id]; !ok {
		return fmt.Errorf("restoring %s of pool %s: %w", addr, id, ipam.ErrUnknownPool)
	}
	a.hold(poolNetwork(id), addr)
	return nil
}

// reconcile makes the store's address claims of this host match held: a held address with no
// claim is claimed again (it was restored while the store was down), a claim of this host's
// that nothing holds is released (a crash between the claim and the endpoint's record, or a
// release the store did not get).
func (a *allocator) reconcile(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, a.s.cfg.OpTimeout)
	defer cancel()
	resp, err := a.s.cli.Get(rctx, prefix+"addrs/", clientv3.WithPrefix())
	if err != nil {
		return
	}
	mine := ownerValue(a.s.cfg.HostID)
	claimed := map[string]map[netip.Addr]bool{}
	for _, kv := range resp.Kvs {
		netID, addr, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), prefix+"addrs/"), "/")
		x, err := netip.ParseAddr(addr)
		if !ok || err != nil || string(kv.Value) != mine {
			continue
		}
		if claimed[netID] == nil {
			claimed[netID] = map[netip.Addr]bool{}
		}
		claimed[netID][x] = true
		if !a.held[netID][x] {
			slog.Info("releasing an address this host claimed and no container holds", "network", netID[:12], "address", x)
			if err := a.cooldown(rctx, string(kv.Key)); err != nil {
				slog.Warn("cannot release a stale address claim", "address", x, "err", err)
			}
		}
	}
	for netID, addrs := range a.held {
		for x := range addrs {
			if claimed[netID][x] {
				continue
			}
			ok, holder, err := a.claim(rctx, netID, x)
			switch {
			case errors.Is(err, ipam.ErrUnknownPool):
			case err != nil:
				slog.Warn("cannot confirm an address of this host in the cluster store", "address", x, "err", err)
			case !ok:
				slog.Error("an address this host's container holds is claimed elsewhere in the cluster", "network", netID[:12], "address", x, "holder", holder)
			}
		}
	}
}
