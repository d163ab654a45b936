package cluster_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

func ids[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sorted(ss ...string) []string { slices.Sort(ss); return ss }

// TestWatchResumesAfterCompaction breaks host2's watch, changes the cluster behind its back
// (a network created, one removed, endpoints published and withdrawn, enough writes to
// compact over), compacts, and lets the watch resume: its revision is gone, so host2 must
// list everything again and end with exactly the cluster's state, deletions included.
func TestWatchResumesAfterCompaction(t *testing.T) {
	e := newEnv(t)
	s1 := e.store(0)
	s2 := e.store(1)
	gate := cluster.GateWatches(s2)
	started(t, s2)
	ctx := context.Background()

	a := create(t, s1, "ov-a", prefixes("10.100.0.0/24"), nil)
	b := create(t, s1, "ov-b", prefixes("10.101.0.0/24"), nil)
	kept := endpoint(a.ID, "kept", netip.MustParsePrefix("10.100.0.2/24"))
	dropped := endpoint(a.ID, "dropped", netip.MustParsePrefix("10.100.0.3/24"))
	for _, ep := range []cluster.EndpointRecord{kept, dropped} {
		if err := s1.PublishEndpoint(ctx, ep); err != nil {
			t.Fatal(err)
		}
	}
	// The watch delivers events: a change is signalled and shows in the snapshot.
	select {
	case <-s2.Changed():
	case <-time.After(5 * time.Second):
		t.Fatal("host2 was not told of a change")
	}
	eventually(t, 5*time.Second, "host2 sees both networks and endpoints", func() bool {
		snap := s2.Snapshot()
		return len(snap.Networks) == 2 && len(snap.Endpoints) == 2
	})

	gate.Break()
	time.Sleep(200 * time.Millisecond) // the watch loop notices and waits at the gate
	c := create(t, s1, "ov-c", prefixes("10.102.0.0/24"), nil)
	if _, err := s1.DeleteNetwork(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s1.WithdrawEndpoint(ctx, a.ID, dropped.ID); err != nil {
		t.Fatal(err)
	}
	added := endpoint(c.ID, "added", netip.MustParsePrefix("10.102.0.2/24"))
	if err := s1.PublishEndpoint(ctx, added); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		k := fmt.Sprintf("%sjunk/%d", keyPrefix, i)
		if _, err := e.raw.Put(e.ctx(), k, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.raw.Delete(e.ctx(), k); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.raw.Get(e.ctx(), "health")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.raw.Compact(e.ctx(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	// While cut off, host2 keeps what it saw: nothing is flushed, nothing new arrives.
	snap := s2.Snapshot()
	if !snap.Synced || !slices.Equal(ids(snap.Networks), sorted(a.ID, b.ID)) || !slices.Equal(ids(snap.Endpoints), sorted(kept.ID, dropped.ID)) {
		t.Fatalf("with its watch broken host2 shows networks %v endpoints %v (synced %v); the test's gate did not hold",
			ids(snap.Networks), ids(snap.Endpoints), snap.Synced)
	}

	gate.Open()
	waited := eventually(t, 10*time.Second, "host2's snapshot caught up after the compaction", func() bool {
		snap := s2.Snapshot()
		return snap.Synced && snap.Revision >= resp.Header.Revision &&
			slices.Equal(ids(snap.Networks), sorted(a.ID, c.ID)) &&
			slices.Equal(ids(snap.Endpoints), sorted(kept.ID, added.ID))
	})
	t.Logf("caught up %s after the watch could resume", waited.Round(time.Millisecond))
	if _, ok := s2.NetworkNamed("ov-b"); ok {
		t.Error("host2 still knows the removed network's name")
	}
	if id, ok := s2.NetworkNamed("ov-c"); !ok || id != c.ID {
		t.Errorf("host2 does not know ov-c by name: %q, %v", id, ok)
	}
	// And it watches again: a later change arrives as an event.
	late := endpoint(c.ID, "late", netip.MustParsePrefix("10.102.0.3/24"))
	if err := s1.PublishEndpoint(ctx, late); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "host2 sees an endpoint published after the resume", func() bool { return seen(s2, late.ID) })
}

// checkUnavailable asserts what a user sees when the store does not answer: an Unavailable
// error naming the store, within about the operation timeout.
func checkUnavailable(t *testing.T, s *cluster.Store, timeout time.Duration, what string, op func() error) {
	t.Helper()
	start := time.Now()
	err := op()
	took := time.Since(start)
	if !errdefs.Is(err, errdefs.KindUnavailable) || !strings.Contains(err.Error(), s.URL()) {
		t.Errorf("%s with the store unreachable: %v (kind %v), want Unavailable naming %s", what, err, errdefs.KindOf(err), s.URL())
	}
	if took > timeout+time.Second {
		t.Errorf("%s took %s to fail; the operation timeout is %s", what, took.Round(time.Millisecond), timeout)
	}
}

// TestUnreachableStore points a store at a socket nobody listens on: every operation a user
// waits for fails within the operation timeout with an error naming the store, while what
// needs no store (opening pools and restoring addresses at start, adopting endpoints) works.
func TestUnreachableStore(t *testing.T) {
	cfg := config("unix://"+filepath.Join(t.TempDir(), "nobody.sock"), 0)
	cfg.OpTimeout = time.Second
	s := openStore(t, cfg)
	if !strings.Contains(s.URL(), "nobody.sock") {
		t.Errorf("URL() = %q, want the store's endpoint", s.URL())
	}
	rec := cluster.NetworkRecord{ID: netID("off"), Name: "off", SegmentID: 4096, Subnets: prefixes("10.110.0.0/24")}
	alloc := s.Allocator()
	pool := requestPool(t, alloc, rec)
	if err := restore(alloc, pool.ID, addr("10.110.0.9")); err != nil {
		t.Errorf("restoring an address with the store down: %v", err)
	}
	ep := endpoint(rec.ID, "off", netip.MustParsePrefix("10.110.0.9/24"))
	s.AdoptEndpoint(ep)
	s.Start() // its loops retry in the background

	ctx := context.Background()
	for _, tc := range []struct {
		what string
		op   func() error
	}{
		{"creating a network", func() error {
			_, err := s.CreateNetwork(ctx, rec.ID, rec.Name, nil, nil, build)
			return err
		}},
		{"removing a network", func() error { _, err := s.DeleteNetwork(ctx, rec); return err }},
		{"publishing an endpoint", func() error {
			return s.PublishEndpoint(ctx, endpoint(rec.ID, "new", netip.MustParsePrefix("10.110.0.2/24")))
		}},
		{"withdrawing an endpoint", func() error { return s.WithdrawEndpoint(ctx, rec.ID, ep.ID) }},
		{"allocating an address", func() error { _, err := alloc.RequestAddress(pool.ID, netip.Addr{}); return err }},
		{"allocating a static address", func() error { _, err := alloc.RequestAddress(pool.ID, addr("10.110.0.7")); return err }},
		{"releasing an address", func() error { return alloc.ReleaseAddress(pool.ID, addr("10.110.0.9")) }},
	} {
		t.Run(tc.what, func(t *testing.T) { checkUnavailable(t, s, cfg.OpTimeout, tc.what, tc.op) })
	}
	if s.Snapshot().Synced {
		t.Error("a store that never answered claims a synced snapshot")
	}
	start := time.Now()
	s.Close()
	if took := time.Since(start); took > cfg.OpTimeout+time.Second {
		t.Errorf("Close took %s with the store unreachable", took)
	}
}

// TestStoreGoesAway kills the etcd a running store uses: the host keeps the cluster as it
// last saw it (a store outage must not tear down tunnels), and operations fail as
// Unavailable within the timeout instead of hanging.
func TestStoreGoesAway(t *testing.T) {
	skipUnlessEtcd(t)
	srv, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.kill()
	cfg := config(srv.endpoint(), 0)
	cfg.OpTimeout = time.Second
	s := started(t, openStore(t, cfg))
	rec := create(t, s, "ov-away", prefixes("10.111.0.0/24"), nil)
	pool := requestPool(t, s.Allocator(), rec)
	if _, err := s.Allocator().RequestAddress(pool.ID, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	ep := endpoint(rec.ID, "away", netip.MustParsePrefix("10.111.0.2/24"))
	if err := s.PublishEndpoint(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the store sees its own network and endpoint", func() bool {
		snap := s.Snapshot()
		return len(snap.Networks) == 1 && len(snap.Endpoints) == 1
	})

	srv.kill()
	time.Sleep(3 * cfg.TTL / 2) // longer than the lease: the host must not drop its view
	snap := s.Snapshot()
	if !snap.Synced || len(snap.Networks) != 1 || len(snap.Endpoints) != 1 || len(snap.Hosts) != 1 {
		t.Errorf("with etcd gone the snapshot became synced=%v networks=%d endpoints=%d hosts=%d; want it kept",
			snap.Synced, len(snap.Networks), len(snap.Endpoints), len(snap.Hosts))
	}
	checkUnavailable(t, s, cfg.OpTimeout, "creating a network", func() error {
		_, err := s.CreateNetwork(context.Background(), netID("ov-late"), "ov-late", nil, nil, build)
		return err
	})
	checkUnavailable(t, s, cfg.OpTimeout, "allocating an address", func() error {
		_, err := s.Allocator().RequestAddress(pool.ID, netip.Addr{})
		return err
	})
}
