package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// endpoint is an endpoint record as the controller publishes it; the store fills in the host.
func endpoint(networkID, ctr string, a netip.Prefix) cluster.EndpointRecord {
	return cluster.EndpointRecord{
		ID: hostID("ep/" + ctr), NetworkID: networkID, ContainerID: hostID("ctr/" + ctr),
		Address: a, MAC: "02:42:0a:00:00:02", Names: []string{ctr, "alias-" + ctr},
	}
}

func endpointKey(rec cluster.EndpointRecord) string {
	return keyPrefix + "endpoints/" + rec.NetworkID + "/" + rec.ID
}

// started starts s and waits until its snapshot is synced, as the daemon's first overlay
// operations would.
func started(t *testing.T, s *cluster.Store) *cluster.Store {
	t.Helper()
	if s.Snapshot().Synced {
		t.Fatal("a store that was never started claims a synced snapshot")
	}
	s.Start()
	eventually(t, 5*time.Second, "the snapshot synced after Start", func() bool { return s.Snapshot().Synced })
	return s
}

func seen(s *cluster.Store, epID string) bool {
	_, ok := s.Snapshot().Endpoints[epID]
	return ok
}

// TestPublishEndpoint: an endpoint is written under its host's lease, with the host's name
// and VTEP, and the other host's snapshot shows it; withdrawn, it disappears there too.
func TestPublishEndpoint(t *testing.T) {
	e := newEnv(t)
	s1 := e.store(0)
	s2 := started(t, e.store(1))
	ctx := context.Background()
	rec := create(t, s1, "ov-pub", prefixes("10.90.0.0/24"), nil)

	ep := endpoint(rec.ID, "web", netip.MustParsePrefix("10.90.0.2/24"))
	ep.Host, ep.HostName = "forged", "forged" // the store says who publishes, not the caller
	if err := s1.PublishEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}
	_, hostLease, ok := e.get(keyPrefix + "hosts/" + s1.HostID())
	if !ok || hostLease == 0 {
		t.Fatalf("publishing did not register host1 under a lease (lease %x)", hostLease)
	}
	v, epLease, ok := e.get(endpointKey(ep))
	if !ok || epLease != hostLease {
		t.Fatalf("endpoint record present=%v under lease %x, want host1's lease %x", ok, epLease, hostLease)
	}
	var stored cluster.EndpointRecord
	if err := json.Unmarshal([]byte(v), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.Host != s1.HostID() || stored.HostName != "host1" || stored.VTEP != s1.VTEP() {
		t.Errorf("stored endpoint says host %q (%s) at %s, want host1 at %s", stored.HostName, stored.Host, stored.VTEP, s1.VTEP())
	}

	waited := eventually(t, 5*time.Second, "host2 sees host1's endpoint", func() bool { return seen(s2, ep.ID) })
	t.Logf("host2 saw the endpoint after %s", waited.Round(time.Millisecond))
	snap := s2.Snapshot()
	got := snap.Endpoints[ep.ID]
	if got.VTEP != netip.MustParseAddr("192.168.1.11") || got.Address != ep.Address || strings.Join(got.Names, ",") != "web,alias-web" || got.NetworkID != rec.ID {
		t.Errorf("host2 sees %+v", got)
	}
	if h := snap.Hosts[s1.HostID()]; h.VTEP != s1.VTEP() || h.Name != "host1" {
		t.Errorf("host2 sees host1 as %+v", h)
	}
	if n := snap.Networks[rec.ID]; n.Name != "ov-pub" || n.SegmentID != rec.SegmentID {
		t.Errorf("host2 sees the network as %+v", n)
	}
	if id, ok := s2.NetworkNamed("ov-pub"); !ok || id != rec.ID {
		t.Errorf("NetworkNamed(ov-pub) on host2 = %q, %v", id, ok)
	}

	if err := s1.WithdrawEndpoint(ctx, rec.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "host2 no longer sees the withdrawn endpoint", func() bool { return !seen(s2, ep.ID) })

	// A network that does not exist (removed from another host meanwhile) is refused.
	ghost := endpoint(netID("ghost"), "lost", netip.MustParsePrefix("10.91.0.2/24"))
	err := s1.PublishEndpoint(ctx, ghost)
	if !errdefs.Is(err, errdefs.KindNotFound) || !strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("publishing on a missing network: %v (kind %v), want NotFound", err, errdefs.KindOf(err))
	}
	if _, _, ok := e.get(endpointKey(ghost)); ok {
		t.Error("an endpoint of a missing network was written")
	}
}

// TestHostDeath: a host that stops without withdrawing (killed daemon, dead machine) has its
// endpoints and its registration vanish from the other hosts within about the lease's TTL;
// the network and the address claims, which are persistent, stay.
func TestHostDeath(t *testing.T) {
	e := newEnv(t)
	s1 := started(t, e.store(0))
	s2 := started(t, e.store(1))
	rec := create(t, s1, "ov-death", prefixes("10.92.0.0/24"), nil)
	pool := requestPool(t, s1.Allocator(), rec)
	a, err := s1.Allocator().RequestAddress(pool.ID, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(rec.ID, "doomed", netip.PrefixFrom(a, 24))
	if err := s1.PublishEndpoint(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "host2 sees host1's endpoint", func() bool { return seen(s2, ep.ID) })

	s1.Close()
	closed := time.Now()
	waited := eventually(t, 2*time.Second+3*time.Second, "host1's endpoint gone from host2 after host1 died", func() bool {
		snap := s2.Snapshot()
		_, ep := snap.Endpoints[ep.ID]
		_, host := snap.Hosts[s1.HostID()]
		return !ep && !host
	})
	t.Logf("host1's endpoint vanished %s after it stopped (TTL 2s)", waited.Round(time.Millisecond))
	if time.Since(closed) < 500*time.Millisecond {
		t.Errorf("the endpoint vanished %s after the host stopped: Close must leave it to the lease", time.Since(closed))
	}
	if _, ok := s2.Snapshot().Networks[rec.ID]; !ok {
		t.Error("the network went with the host that created it")
	}
	if v, _, _ := e.get(keyPrefix + "addrs/" + rec.ID + "/" + a.String()); v != "host:"+s1.HostID() {
		t.Errorf("the dead host's address claim is %q; it must stay for its restart", v)
	}
}

// TestLeaseRevoked: when the host's lease is gone (expired while the host was cut off, or
// revoked by an operator), the lease loop registers again and writes every endpoint of the
// host, published or adopted after a restart, under the new lease.
func TestLeaseRevoked(t *testing.T) {
	e := newEnv(t)
	s1 := e.store(0)
	rec := create(t, s1, "ov-lease", prefixes("10.93.0.0/24"), nil)
	adopted := endpoint(rec.ID, "restored", netip.MustParsePrefix("10.93.0.2/24"))
	s1.AdoptEndpoint(adopted)
	started(t, s1)
	eventually(t, 5*time.Second, "the adopted endpoint written", func() bool { _, _, ok := e.get(endpointKey(adopted)); return ok })
	published := endpoint(rec.ID, "new", netip.MustParsePrefix("10.93.0.3/24"))
	if err := s1.PublishEndpoint(context.Background(), published); err != nil {
		t.Fatal(err)
	}
	_, old, _ := e.get(keyPrefix + "hosts/" + s1.HostID())

	if _, err := e.raw.Revoke(e.ctx(), clientv3.LeaseID(old)); err != nil {
		t.Fatal(err)
	}
	waited := eventually(t, 5*time.Second, "host1 registered again with both endpoints under the new lease", func() bool {
		_, hl, ok := e.get(keyPrefix + "hosts/" + s1.HostID())
		if !ok || hl == old {
			return false
		}
		for _, ep := range []cluster.EndpointRecord{adopted, published} {
			if _, l, ok := e.get(endpointKey(ep)); !ok || l != hl {
				return false
			}
		}
		return true
	})
	t.Logf("re-registered %s after the revocation", waited.Round(time.Millisecond))
}

// TestReconcileOwn: the store's records of this host converge on what the host has: a record
// of this host it does not own (left by a crash, or written by hand) is deleted, one of its
// own deleted by hand comes back, and another host's records are never touched.
func TestReconcileOwn(t *testing.T) {
	e := newEnv(t)
	s1 := started(t, e.store(0))
	rec := create(t, s1, "ov-own", prefixes("10.94.0.0/24"), nil)
	mine := endpoint(rec.ID, "mine", netip.MustParsePrefix("10.94.0.2/24"))
	if err := s1.PublishEndpoint(context.Background(), mine); err != nil {
		t.Fatal(err)
	}
	stray := endpoint(rec.ID, "stray", netip.MustParsePrefix("10.94.0.3/24"))
	stray.Host, stray.HostName, stray.VTEP = s1.HostID(), "host1", s1.VTEP()
	foreign := endpoint(rec.ID, "foreign", netip.MustParsePrefix("10.94.0.4/24"))
	foreign.Host, foreign.HostName, foreign.VTEP = hostID("host2"), "host2", netip.MustParseAddr("172.31.1.12")
	for _, ep := range []cluster.EndpointRecord{stray, foreign} {
		b, _ := json.Marshal(ep)
		if _, err := e.raw.Put(e.ctx(), endpointKey(ep), string(b)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.raw.Delete(e.ctx(), endpointKey(mine)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the stray record deleted and the own one back", func() bool {
		_, _, strayThere := e.get(endpointKey(stray))
		_, _, mineThere := e.get(endpointKey(mine))
		return !strayThere && mineThere
	})
	// Give the loop a few more rounds (TTL/3 each) to do something wrong.
	time.Sleep(1500 * time.Millisecond)
	if _, _, ok := e.get(endpointKey(foreign)); !ok {
		t.Error("host1 deleted host2's endpoint")
	}
	if _, _, ok := e.get(endpointKey(mine)); !ok {
		t.Error("host1's own endpoint is gone")
	}
}

// TestPublishWhileRunning publishes endpoints on a running store, several at once: none may
// be deleted afterwards, not even for a moment (another host would tear down its tunnel
// entries). The watch hands a new record to the reconcile pass about when the publish call
// returns, and that pass deletes the records of this host that it does not own.
func TestPublishWhileRunning(t *testing.T) {
	e := newEnv(t)
	s1 := started(t, e.store(0))
	rec := create(t, s1, "ov-busy", prefixes("10.95.0.0/24"), nil)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := e.raw.Watch(wctx, keyPrefix+"endpoints/", clientv3.WithPrefix())

	const n = 50
	var wg sync.WaitGroup
	eps := make([]cluster.EndpointRecord, n)
	for i := range eps {
		eps[i] = endpoint(rec.ID, fmt.Sprintf("busy-%d", i), netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 95, 0, byte(2 + i)}), 24))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s1.PublishEndpoint(context.Background(), eps[i]); err != nil {
				t.Errorf("publishing %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	deadline := time.After(1500 * time.Millisecond) // a few reconcile rounds
	for done := false; !done; {
		select {
		case resp := <-events:
			for _, ev := range resp.Events {
				if ev.Type == clientv3.EventTypeDelete {
					t.Errorf("a published endpoint was deleted: %s", ev.Kv.Key)
				}
			}
		case <-deadline:
			done = true
		}
	}
	for i, ep := range eps {
		if _, _, ok := e.get(endpointKey(ep)); !ok {
			t.Errorf("published endpoint %d is not in the store", i)
		}
		if !seen(s1, ep.ID) {
			t.Errorf("endpoint %d is not in host1's own snapshot", i)
		}
	}
}
