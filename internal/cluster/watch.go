package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// entry is one key of the store as this host last saw it.
type entry struct {
	value []byte
	lease int64
}

// cache is this host's copy of everything under the prefix, kept by the watch. Guarded by
// Store.mu.
type cache struct {
	synced bool  // a full listing has been read
	rev    int64 // revision the copy is at
	kv     map[string]entry
}

func newCache() cache { return cache{kv: map[string]entry{}} }

// Snapshot is the cluster as this host last saw it. While the store is unreachable it stays
// what it was: nothing is flushed because a watch went quiet.
type Snapshot struct {
	// Synced is false until the first full listing: before it, an empty snapshot says
	// nothing about the cluster.
	Synced    bool
	Revision  int64
	Hosts     map[string]HostRecord
	Networks  map[string]NetworkRecord
	Endpoints map[string]EndpointRecord // by endpoint ID
}

// Snapshot decodes the cached view.
func (s *Store) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Synced: s.cache.synced, Revision: s.cache.rev, Hosts: map[string]HostRecord{},
		Networks: map[string]NetworkRecord{}, Endpoints: map[string]EndpointRecord{}}
	for k, e := range s.cache.kv {
		rest := strings.TrimPrefix(k, prefix)
		kind, _, _ := strings.Cut(rest, "/")
		var err error
		switch kind {
		case "hosts":
			var h HostRecord
			if err = json.Unmarshal(e.value, &h); err == nil {
				snap.Hosts[h.ID] = h
			}
		case "networks":
			var n NetworkRecord
			if err = json.Unmarshal(e.value, &n); err == nil {
				snap.Networks[n.ID] = n
			}
		case "endpoints":
			var ep EndpointRecord
			if err = json.Unmarshal(e.value, &ep); err == nil {
				snap.Endpoints[ep.ID] = ep
			}
		}
		if err != nil {
			slog.Warn("ignoring an unreadable record in the cluster store", "key", k, "err", err)
		}
	}
	return snap
}

// watchLoop keeps the cache: a full listing, then a watch from the listing's revision. A
// watch that breaks resumes from the last revision seen; one whose revision was compacted
// away lists everything again (the events in between are lost, the state is not). The watch
// requires a leader, so that a member cut off from its quorum does not serve a silent watch.
func (s *Store) watchLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		s.mu.Lock()
		synced, rev := s.cache.synced, s.cache.rev
		s.mu.Unlock()
		if !synced {
			if err := s.relist(ctx); err != nil {
				slog.Warn("cannot list the cluster store; retrying", "store", s.url, "err", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			continue
		}
		if err := s.watchFrom(ctx, rev+1); err != nil && ctx.Err() == nil {
			slog.Warn("the watch on the cluster store ended; resuming", "store", s.url, "from", rev+1, "err", err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// relist replaces the cache with a full listing.
func (s *Store) relist(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	resp, err := s.cli.Get(lctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	kv := make(map[string]entry, len(resp.Kvs))
	for _, x := range resp.Kvs {
		kv[string(x.Key)] = entry{value: x.Value, lease: x.Lease}
	}
	s.mu.Lock()
	s.cache = cache{synced: true, rev: resp.Header.Revision, kv: kv}
	s.mu.Unlock()
	s.setReachable(nil)
	s.notify()
	return nil
}

// watchFrom applies events from rev on until the watch ends.
func (s *Store) watchFrom(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		if resp.CompactRevision != 0 {
			slog.Info("the cluster store compacted past this host's watch; listing again", "compacted", resp.CompactRevision)
			s.mu.Lock()
			s.cache.synced = false
			s.mu.Unlock()
			return nil
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if len(resp.Events) == 0 {
			continue
		}
		s.mu.Lock()
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			if ev.Type == mvccpb.DELETE {
				delete(s.cache.kv, k)
			} else {
				s.cache.kv[k] = entry{value: ev.Kv.Value, lease: ev.Kv.Lease}
			}
		}
		s.cache.rev = resp.Header.Revision
		s.mu.Unlock()
		s.notify()
	}
	return ctx.Err()
}

// NetworkNamed reports the global network called name, as this host last saw the store.
func (s *Store) NetworkNamed(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache.kv[nameKey(name)]
	return string(e.value), ok
}

// cachedKeys lists the keys under p in the watch's copy, and whether the copy was listed.
func (s *Store) cachedKeys(p string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cache.synced {
		return nil, false
	}
	var out []string
	for k := range s.cache.kv {
		if strings.HasPrefix(k, p) {
			out = append(out, k)
		}
	}
	return out, true
}
