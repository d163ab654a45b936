package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseLoop keeps this host registered: the lease is renewed every third of its TTL; a lease
// that expired (the host was cut off from etcd longer than the TTL, or the daemon was down)
// is replaced by a new one, and the host's endpoints are written again under it. Each round
// also reconciles what the store holds of this host with what the host has (reconcileOwn), so
// that drift heals without an event: state, not only events.
func (s *Store) leaseLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.TTL / 3)
	defer tick.Stop()
	full := true
	for {
		if full {
			s.renew(ctx)
		}
		s.reconcileOwn(ctx, full)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			full = true
		case <-s.kick:
			// The store changed: check this host's endpoint records now (from the watch's
			// copy, no round trip unless one must be written), so that one deleted by hand
			// comes back at once. The lease and the address claims wait for the tick: an
			// event is no reason to renew, and the claims' check reads etcd.
			full = false
		}
	}
}

// renew renews the lease once, or gets a new one.
func (s *Store) renew(ctx context.Context) {
	s.mu.Lock()
	id := s.lease
	s.mu.Unlock()
	if id != 0 {
		kctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		_, err := s.cli.KeepAliveOnce(kctx, id)
		cancel()
		if err == nil {
			s.setReachable(nil)
			return
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			slog.Warn("cannot renew this host's lease in the cluster store", "store", s.url, "err", err)
			s.setReachable(err)
			return
		}
		s.setReachable(nil) // it answered: the lease is gone
		slog.Warn("this host's lease in the cluster store expired; registering again", "store", s.url)
		s.dropLease(id)
	}
	gctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	_, err := s.currentLease(gctx)
	if err != nil && ctx.Err() == nil {
		slog.Warn("cannot register this host in the cluster store", "store", s.url, "err", err)
	}
	if ctx.Err() == nil {
		s.setReachable(err)
	}
}

// reconcileOwn makes the store's records of this host match the host: every endpoint of the
// host is written under the current lease, every endpoint record of the host that the host no
// longer has is deleted, and, with claims, the allocator's claims are checked (see
// allocator.reconcile).
func (s *Store) reconcileOwn(ctx context.Context, claims bool) {
	s.mu.Lock()
	lease := s.lease
	synced := s.cache.synced
	var put []EndpointRecord
	var del []string
	for _, rec := range s.own {
		e, ok := s.cache.kv[endpointKey(rec.NetworkID, rec.ID)]
		if !ok || clientv3.LeaseID(e.lease) != lease {
			put = append(put, rec)
		}
	}
	for k, e := range s.cache.kv {
		if !strings.HasPrefix(k, prefix+"endpoints/") {
			continue
		}
		var rec EndpointRecord
		if json.Unmarshal(e.value, &rec) == nil && rec.Host == s.cfg.HostID {
			if _, mine := s.own[rec.ID]; !mine {
				del = append(del, k)
			}
		}
	}
	s.mu.Unlock()
	if lease == 0 || !synced {
		return
	}
	// One bounded call at a time, and the pass ends at the first failure: while etcd is
	// away, a pass costs one deadline, and a withdraw waiting on passMu (see WithdrawEndpoint)
	// waits no longer than that.
	s.writeOwn(ctx, lease, put, del)
	if claims {
		s.ipam.reconcile(ctx)
	}
}

// writeOwn rewrites this host's endpoints that need it and deletes its stale ones.
func (s *Store) writeOwn(ctx context.Context, lease clientv3.LeaseID, put []EndpointRecord, del []string) {
	s.passMu.Lock()
	defer s.passMu.Unlock()
	for _, rec := range put {
		s.mu.Lock()
		_, still := s.own[rec.ID]
		s.mu.Unlock()
		if !still {
			continue // withdrawn since the pass began
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		err := s.putEndpoint(pctx, lease, rec)
		cancel()
		if err != nil {
			slog.Warn("cannot write an endpoint of this host to the cluster store", "endpoint", rec.ID[:12], "err", err)
			return
		}
	}
	for _, k := range del {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		_, err := s.cli.Delete(dctx, k)
		cancel()
		if err != nil {
			slog.Warn("cannot delete a stale endpoint of this host from the cluster store", "key", k, "err", err)
			return
		}
		slog.Info("deleted a stale endpoint of this host from the cluster store", "key", k)
	}
}
