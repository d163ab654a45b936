package cluster

import (
	"context"
	"encoding/json"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

// PublishEndpoint writes a new endpoint of this host under the host's lease, so that the other
// hosts program their tunnels and names for it. It is refused if the network is gone from the
// cluster (removed from another host meanwhile).
func (s *Store) PublishEndpoint(ctx context.Context, rec EndpointRecord) error {
	rec.Host, rec.HostName, rec.VTEP = s.cfg.HostID, s.cfg.HostName, s.cfg.VTEP
	// The host owns the endpoint before the record exists: the watch may hand the new record
	// to the reconcile pass before this call returns, and that pass deletes records of this
	// host that it does not own.
	s.mu.Lock()
	prev, had := s.own[rec.ID]
	s.own[rec.ID] = rec
	s.mu.Unlock()
	err := s.op(ctx, "publishing the endpoint of "+rec.ContainerID[:12], func(ctx context.Context) error {
		lease, err := s.currentLease(ctx)
		if err != nil {
			return err
		}
		err = s.putEndpoint(ctx, lease, rec)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// The lease expired since the last renewal (this host was cut off longer
			// than the TTL): register again now rather than at the next tick.
			s.dropLease(lease)
			if lease, err = s.currentLease(ctx); err != nil {
				return err
			}
			err = s.putEndpoint(ctx, lease, rec)
		}
		return err
	})
	if err != nil {
		// Not published: the host does not own it (a record that did get written after
		// all is deleted by the reconcile pass).
		s.mu.Lock()
		if had {
			s.own[rec.ID] = prev
		} else {
			delete(s.own, rec.ID)
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// AdoptEndpoint makes an endpoint this host already has (restored after a restart) one of its
// own: the reconcile loop writes it under the current lease.
func (s *Store) AdoptEndpoint(rec EndpointRecord) {
	rec.Host, rec.HostName, rec.VTEP = s.cfg.HostID, s.cfg.HostName, s.cfg.VTEP
	s.mu.Lock()
	s.own[rec.ID] = rec
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// WithdrawEndpoint deletes an endpoint of this host. The host forgets it first: if the store
// cannot be reached now, the reconcile loop deletes the record once it can.
func (s *Store) WithdrawEndpoint(ctx context.Context, networkID, endpointID string) error {
	// After a reconcile pass in progress, which may be rewriting this very record: the
	// delete must come last.
	s.passMu.Lock()
	defer s.passMu.Unlock()
	s.mu.Lock()
	delete(s.own, endpointID)
	s.mu.Unlock()
	return s.op(ctx, "withdrawing endpoint "+endpointID[:12], func(ctx context.Context) error {
		_, err := s.cli.Delete(ctx, endpointKey(networkID, endpointID))
		return err
	})
}

func (s *Store) putEndpoint(ctx context.Context, lease clientv3.LeaseID, rec EndpointRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(networkKey(rec.NetworkID)), ">", 0)).
		Then(clientv3.OpPut(endpointKey(rec.NetworkID, rec.ID), string(data), clientv3.WithLease(lease))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return errdefs.NotFound("network %s no longer exists in the cluster", rec.NetworkID[:12])
	}
	return nil
}
