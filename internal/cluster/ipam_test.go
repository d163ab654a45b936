package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/ipam"
)

// requestPool opens the pool of rec's first subnet in alloc, as the controller does with the
// network's configuration.
func requestPool(t *testing.T, alloc ipam.Allocator, rec cluster.NetworkRecord) ipam.PoolInfo {
	t.Helper()
	info, err := alloc.RequestPool(ipam.PoolRequest{Owner: rec.ID, Config: ipam.Config{Subnet: rec.Subnets[0]}})
	if err != nil {
		t.Fatalf("RequestPool(%s): %v", rec.Subnets[0], err)
	}
	return info
}

// restore is the controller's call after a restart (its restorer interface): the allocator
// is told of an address without the store being asked.
func restore(alloc ipam.Allocator, pool ipam.PoolID, a netip.Addr) error {
	r, ok := alloc.(interface {
		RestoreAddress(ipam.PoolID, netip.Addr) error
	})
	if !ok {
		return errors.New("the cluster allocator cannot restore addresses")
	}
	return r.RestoreAddress(pool, a)
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestAllocatorRequestPool(t *testing.T) {
	e := newEnv(t)
	s := e.store(0)
	alloc := s.Allocator()
	rec := create(t, s, "ov-pool", prefixes("10.40.0.0/24"), nil)

	info, err := alloc.RequestPool(ipam.PoolRequest{Owner: rec.ID, Config: ipam.Config{
		Subnet: rec.Subnets[0], IPRange: netip.MustParsePrefix("10.40.0.128/25"), Gateway: addr("10.40.0.254")}})
	if err != nil {
		t.Fatal(err)
	}
	if info.Subnet != rec.Subnets[0] || info.IPRange != netip.MustParsePrefix("10.40.0.128/25") || info.Gateway != addr("10.40.0.254") {
		t.Errorf("pool info %+v does not reflect the network's configuration", info)
	}
	// Dynamic addresses come from the ip-range, lowest first.
	if a, err := alloc.RequestAddress(info.ID, netip.Addr{}); err != nil || a != addr("10.40.0.128") {
		t.Errorf("first address of --ip-range 10.40.0.128/25: %v, %v", a, err)
	}

	if _, err := alloc.RequestPool(ipam.PoolRequest{Owner: rec.ID}); !errors.Is(err, ipam.ErrInvalidConfig) {
		t.Errorf("a pool without a subnet: %v, want ErrInvalidConfig (the subnet comes from the cluster)", err)
	}
	if _, err := alloc.RequestPool(ipam.PoolRequest{Owner: rec.ID, Config: ipam.Config{Subnet: rec.Subnets[0], Gateway: addr("10.41.0.1")}}); !errors.Is(err, ipam.ErrInvalidConfig) {
		t.Errorf("a gateway outside the subnet: %v, want ErrInvalidConfig", err)
	}
	if _, err := alloc.RequestAddress("nope/10.0.0.0/24", netip.Addr{}); !errors.Is(err, ipam.ErrUnknownPool) {
		t.Errorf("an address of an unknown pool: %v, want ErrUnknownPool", err)
	}
	if err := restore(alloc, "nope/10.0.0.0/24", addr("10.0.0.2")); !errors.Is(err, ipam.ErrUnknownPool) {
		t.Errorf("restoring into an unknown pool: %v, want ErrUnknownPool", err)
	}
}

// TestAllocatorConcurrentHosts has two hosts allocate 20 addresses each, all at once: the 40
// addresses are distinct, they are the 40 lowest of the subnet after the gateway, and each is
// claimed in the store by the host that got it.
func TestAllocatorConcurrentHosts(t *testing.T) {
	e := newEnv(t)
	stores := []*cluster.Store{e.store(0), e.store(1)}
	rec := create(t, stores[0], "ov-conc", prefixes("10.50.0.0/24"), nil)
	pools := []ipam.PoolInfo{requestPool(t, stores[0].Allocator(), rec), requestPool(t, stores[1].Allocator(), rec)}

	const per = 20
	var (
		mu  sync.Mutex
		got = map[netip.Addr]int{} // address → host index
		wg  sync.WaitGroup
	)
	for h := range stores {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := stores[h].Allocator().RequestAddress(pools[h].ID, netip.Addr{})
				if err != nil {
					t.Errorf("host%d: %v", h+1, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if other, dup := got[a]; dup {
					t.Errorf("%s handed to host%d and host%d", a, other+1, h+1)
				}
				got[a] = h
			}()
		}
	}
	wg.Wait()
	if len(got) != 2*per {
		t.Fatalf("%d distinct addresses, want %d", len(got), 2*per)
	}
	for i := range 2 * per {
		a := netip.AddrFrom4([4]byte{10, 50, 0, byte(2 + i)})
		h, ok := got[a]
		if !ok {
			t.Errorf("%s was not handed out; the lowest free addresses go first", a)
			continue
		}
		if v, _, _ := e.get(keyPrefix + "addrs/" + rec.ID + "/" + a.String()); v != "host:"+stores[h].HostID() {
			t.Errorf("claim of %s is %q, want host%d's", a, v, h+1)
		}
	}
}

// TestAllocatorStaticAndCooldown follows one --ip address: honoured on one host, refused on
// the other as in use (not as a store failure), given back into a cooldown during which
// nobody gets it, and free again once the cooldown ran out.
func TestAllocatorStaticAndCooldown(t *testing.T) {
	e := newEnv(t)
	s1, s2 := e.store(0), e.store(1)
	rec := create(t, s1, "ov-static", prefixes("10.60.0.0/24"), nil)
	p1, p2 := requestPool(t, s1.Allocator(), rec), requestPool(t, s2.Allocator(), rec)
	a1, a2 := s1.Allocator(), s2.Allocator()
	fixed := addr("10.60.0.100")

	if got, err := a1.RequestAddress(p1.ID, fixed); err != nil || got != fixed {
		t.Fatalf("static %s on host1: %v, %v", fixed, got, err)
	}
	for _, tc := range []struct {
		name  string
		alloc ipam.Allocator
		pool  ipam.PoolID
		want  netip.Addr
		is    error
		kind  errdefs.Kind
		msg   string
	}{
		{"held on the other host", a2, p2.ID, fixed, ipam.ErrInUse, errdefs.KindConflict, "held by a container on another host"},
		{"held on this host", a1, p1.ID, fixed, ipam.ErrInUse, errdefs.KindConflict, "disconnect the container that has it"},
		{"the gateway", a2, p2.ID, addr("10.60.0.1"), ipam.ErrReserved, errdefs.KindInvalid, "reserved"},
		{"outside the subnet", a2, p2.ID, addr("10.61.0.5"), ipam.ErrOutsideSubnet, errdefs.KindInvalid, "10.60.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.alloc.RequestAddress(tc.pool, tc.want)
			if !errors.Is(err, tc.is) || errdefs.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %v (kind %v), want %v of kind %v mentioning %q", err, errdefs.KindOf(err), tc.is, tc.kind, tc.msg)
			}
			// A refusal is not the store's fault and must not say so.
			if err != nil && strings.Contains(err.Error(), "cluster store") {
				t.Errorf("a refused address is reported as a store failure: %v", err)
			}
		})
	}

	if err := a1.ReleaseAddress(p1.ID, fixed); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	v, lease, _ := e.get(keyPrefix + "addrs/" + rec.ID + "/" + fixed.String())
	if v != "cooldown" || lease == 0 {
		t.Fatalf("a released address is %q (lease %x), want cooldown under a lease", v, lease)
	}
	for _, a := range []ipam.Allocator{a1, a2} {
		_, err := a.RequestAddress(p2.ID, fixed)
		if a == a1 {
			_, err = a.RequestAddress(p1.ID, fixed)
		}
		if !errors.Is(err, ipam.ErrInUse) || !strings.Contains(err.Error(), "cooling down") {
			t.Errorf("asking for an address that cools down: %v, want in use, cooling down", err)
		}
	}
	// Dynamic allocation passes over it too.
	for range 3 {
		if got, err := a2.RequestAddress(p2.ID, netip.Addr{}); err != nil || got == fixed {
			t.Fatalf("dynamic allocation during the cooldown: %v, %v", got, err)
		}
	}
	var err error
	waited := eventually(t, 10*time.Second, "the address free again after its cooldown", func() bool {
		_, err = a2.RequestAddress(p2.ID, fixed)
		return err == nil
	})
	if since := time.Since(released); since < 1500*time.Millisecond {
		t.Errorf("the address came back %s after its release; the cooldown is 2s", since)
	}
	t.Logf("free again %s after the release (%s of polling)", time.Since(released).Round(time.Millisecond), waited.Round(time.Millisecond))
}

// TestAllocatorRefusals: an exhausted pool and a network removed from the cluster meanwhile
// are the allocator's answers, with their ipam errors, not store failures.
func TestAllocatorRefusals(t *testing.T) {
	e := newEnv(t)
	s1, s2 := e.store(0), e.store(1)
	rec := create(t, s1, "ov-small", prefixes("10.70.0.0/29"), nil) // .1 gateway, .2-.6 usable
	p1, p2 := requestPool(t, s1.Allocator(), rec), requestPool(t, s2.Allocator(), rec)
	for i := range 5 {
		a, p := s1.Allocator(), p1
		if i%2 == 1 {
			a, p = s2.Allocator(), p2
		}
		if _, err := a.RequestAddress(p.ID, netip.Addr{}); err != nil {
			t.Fatalf("address %d of 5: %v", i+1, err)
		}
	}
	_, err := s2.Allocator().RequestAddress(p2.ID, netip.Addr{})
	if !errors.Is(err, ipam.ErrPoolExhausted) || errdefs.KindOf(err) != errdefs.KindConflict || strings.Contains(err.Error(), "cluster store") {
		t.Errorf("sixth address of a /29: %v (kind %v), want ErrPoolExhausted, a conflict", err, errdefs.KindOf(err))
	}

	gone := create(t, s1, "ov-gone", prefixes("10.71.0.0/24"), nil)
	pg := requestPool(t, s2.Allocator(), gone)
	if _, err := s1.DeleteNetwork(context.Background(), gone); err != nil {
		t.Fatal(err)
	}
	_, err = s2.Allocator().RequestAddress(pg.ID, netip.Addr{})
	if !errors.Is(err, ipam.ErrUnknownPool) || !strings.Contains(err.Error(), "no longer exists") || errdefs.KindOf(err) == errdefs.KindUnavailable {
		t.Errorf("an address of a network removed from the cluster: %v (kind %v), want ErrUnknownPool", err, errdefs.KindOf(err))
	}
	if k := e.keys(keyPrefix + "addrs/" + gone.ID + "/"); len(k) != 0 {
		t.Errorf("an address was claimed on a removed network: %v", k)
	}
}

// TestAllocatorReconcile: after a restart the daemon restores the addresses its containers
// hold without asking the store; once started, the store confirms them (a claim that vanished
// is made again) and releases the claims of this host that nothing holds, leaving other hosts'
// claims alone.
func TestAllocatorReconcile(t *testing.T) {
	e := newEnv(t)
	s1 := e.store(0)
	rec := create(t, s1, "ov-rec", prefixes("10.80.0.0/24"), nil)
	pool := requestPool(t, s1.Allocator(), rec)
	key := func(a string) string { return keyPrefix + "addrs/" + rec.ID + "/" + a }
	mine, theirs := "host:"+hostID("host1"), "host:"+hostID("host2")

	if err := restore(s1.Allocator(), pool.ID, addr("10.80.0.50")); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{key("10.80.0.60"): mine, key("10.80.0.70"): theirs} {
		if _, err := e.raw.Put(e.ctx(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	s1.Start()
	eventually(t, 5*time.Second, "the restored 10.80.0.50 claimed again", func() bool {
		v, _, _ := e.get(key("10.80.0.50"))
		return v == mine
	})
	eventually(t, 5*time.Second, "the unheld claim 10.80.0.60 released into its cooldown", func() bool {
		v, _, _ := e.get(key("10.80.0.60"))
		return v == "cooldown"
	})
	if v, _, _ := e.get(key("10.80.0.70")); v != theirs {
		t.Errorf("another host's claim became %q", v)
	}
	// The restored address stays this host's: asking for it is refused as held here.
	if _, err := s1.Allocator().RequestAddress(pool.ID, addr("10.80.0.50")); !errors.Is(err, ipam.ErrInUse) {
		t.Errorf("asking for a restored address: %v, want in use", err)
	}
	if got, err := s1.Allocator().RequestAddress(pool.ID, netip.Addr{}); err != nil || slices.Contains([]string{"10.80.0.50", "10.80.0.60", "10.80.0.70"}, got.String()) {
		t.Errorf("next dynamic address %v, %v: must skip held, cooling and foreign claims", got, err)
	}
}
