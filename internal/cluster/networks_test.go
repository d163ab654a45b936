package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/ipam"
)

// spec is what the tests' Build writes as the controller's record: enough to check that the
// record stored is the one built from the claims the store chose.
type spec struct {
	VNI     uint32
	Subnets []netip.Prefix
}

func build(vni uint32, subnets []netip.Prefix) ([]byte, error) {
	return json.Marshal(spec{VNI: vni, Subnets: subnets})
}

// netID is a network ID as the controller makes them: 64 hex digits.
func netID(name string) string { return hostID("net/" + name) }

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func create(t *testing.T, s *cluster.Store, name string, subnets, avoid []netip.Prefix) cluster.NetworkRecord {
	t.Helper()
	rec, err := s.CreateNetwork(context.Background(), netID(name), name, subnets, avoid, build)
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return rec
}

// TestCreateNetworkClaims checks what two hosts creating networks see: the name is the
// cluster's, VNIs count up from 4096, default subnets are distinct /24s of 10.0.0.0/8 that
// avoid what the creating host asked to avoid, and the record stored is the one built.
func TestCreateNetworkClaims(t *testing.T) {
	e := newEnv(t)
	s1, s2 := e.store(0), e.store(1)
	ctx := context.Background()

	a := create(t, s1, "ov-a", nil, prefixes("10.0.0.0/23"))
	b := create(t, s2, "ov-b", nil, nil)
	c := create(t, s1, "ov-c", prefixes("10.99.0.0/16"), nil)

	if got := []uint32{a.SegmentID, b.SegmentID, c.SegmentID}; got[0] != cluster.FirstSegment || got[1] != cluster.FirstSegment+1 || got[2] != cluster.FirstSegment+2 {
		t.Errorf("VNIs = %v, want 4096, 4097, 4098", got)
	}
	if want := prefixes("10.0.2.0/24"); !equalPrefixes(a.Subnets, want) {
		t.Errorf("ov-a (avoiding 10.0.0.0/23) got %v, want %v", a.Subnets, want)
	}
	// host2 does not avoid 10.0.0.0/23, so it gets the lowest /24 no network holds.
	if want := prefixes("10.0.0.0/24"); !equalPrefixes(b.Subnets, want) {
		t.Errorf("ov-b got %v, want %v", b.Subnets, want)
	}
	if want := prefixes("10.99.0.0/16"); !equalPrefixes(c.Subnets, want) {
		t.Errorf("ov-c got %v, want its --subnet %v", c.Subnets, want)
	}

	// The record in the store is what Build made of the claims.
	v, _, ok := e.get(keyPrefix + "networks/" + a.ID)
	if !ok {
		t.Fatal("ov-a has no record in the store")
	}
	var stored cluster.NetworkRecord
	if err := json.Unmarshal([]byte(v), &stored); err != nil {
		t.Fatal(err)
	}
	var sp spec
	if err := json.Unmarshal(stored.Spec, &sp); err != nil {
		t.Fatal(err)
	}
	if stored.Name != "ov-a" || stored.SegmentID != a.SegmentID || sp.VNI != a.SegmentID || !equalPrefixes(sp.Subnets, a.Subnets) {
		t.Errorf("stored record %+v (spec %+v) does not match the returned %+v", stored, sp, a)
	}
	for key, want := range map[string]string{
		"names/ov-a":           a.ID,
		"segments/4096":        a.ID,
		"subnets/10.0.2.0-24":  a.ID,
		"subnets/10.99.0.0-16": c.ID,
	} {
		if got, _, _ := e.get(keyPrefix + key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}

	// Refusals, whichever host asks.
	for _, tc := range []struct {
		name    string
		s       *cluster.Store
		netName string
		subnets []netip.Prefix
		kind    errdefs.Kind
		is      error
		msg     string
	}{
		{"same name from the other host", s2, "ov-a", nil, errdefs.KindConflict, nil, "network with name ov-a already exists in the cluster"},
		{"same name from the same host", s1, "ov-a", nil, errdefs.KindConflict, nil, "already exists"},
		{"subnet inside another's", s2, "ov-d", prefixes("10.99.3.0/24"), errdefs.KindConflict, ipam.ErrOverlap, "a global network of the cluster has it"},
		{"subnet around another's", s1, "ov-e", prefixes("10.0.0.0/16"), errdefs.KindConflict, ipam.ErrOverlap, "overlaps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.keys(keyPrefix)
			_, err := tc.s.CreateNetwork(ctx, netID(tc.netName+" again"), tc.netName, tc.subnets, nil, build) // another creation: a new ID
			if err == nil {
				t.Fatal("created; want refused")
			}
			if errdefs.KindOf(err) != tc.kind || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q (kind %v), want kind %v mentioning %q", err, errdefs.KindOf(err), tc.kind, tc.msg)
			}
			if after := e.keys(keyPrefix); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("a refused creation changed the store:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// TestCreateNetworkBuildError: a record the controller cannot build is its error, passed on
// as it is, and nothing is claimed.
func TestCreateNetworkBuildError(t *testing.T) {
	e := newEnv(t)
	s := e.store(0)
	_, err := s.CreateNetwork(context.Background(), netID("bad"), "bad", nil, nil, func(uint32, []netip.Prefix) ([]byte, error) {
		return nil, errdefs.Invalid("gateway 1.2.3.4 is outside the subnet")
	})
	if !errdefs.Is(err, errdefs.KindInvalid) || !strings.Contains(err.Error(), "gateway 1.2.3.4") {
		t.Errorf("error %v (kind %v), want the builder's Invalid error", err, errdefs.KindOf(err))
	}
	if k := e.keys(keyPrefix); len(k) != 0 {
		t.Errorf("a failed creation left %v", k)
	}
}

// TestCreateNetworkConcurrent has two hosts create ten networks each, all at once: every
// creation succeeds (the retries absorb the collisions) and no VNI or subnet is shared.
func TestCreateNetworkConcurrent(t *testing.T) {
	e := newEnv(t)
	stores := []*cluster.Store{e.store(0), e.store(1)}
	const per = 10
	var wg sync.WaitGroup
	recs := make([]cluster.NetworkRecord, 2*per)
	errs := make([]error, 2*per)
	for i := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("conc-%d", i)
			recs[i], errs[i] = stores[i%2].CreateNetwork(context.Background(), netID(name), name, nil, nil, build)
		}()
	}
	wg.Wait()
	vnis := map[uint32]string{}
	var subnets []netip.Prefix
	for i, r := range recs {
		if errs[i] != nil {
			t.Errorf("conc-%d: %v", i, errs[i])
			continue
		}
		if other, dup := vnis[r.SegmentID]; dup {
			t.Errorf("%s and %s share VNI %d", r.Name, other, r.SegmentID)
		}
		vnis[r.SegmentID] = r.Name
		if r.SegmentID < cluster.FirstSegment || r.SegmentID >= cluster.FirstSegment+2*per {
			t.Errorf("%s got VNI %d, want one of the %d lowest from 4096", r.Name, r.SegmentID, 2*per)
		}
		if len(r.Subnets) != 1 || r.Subnets[0].Bits() != 24 || !cluster.DefaultPool.Contains(r.Subnets[0].Addr()) {
			t.Errorf("%s got %v, want one /24 of %s", r.Name, r.Subnets, cluster.DefaultPool)
			continue
		}
		if err := ipam.CheckOverlap(r.Subnets[0], subnets); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
		subnets = append(subnets, r.Subnets[0])
	}
	if n := len(e.keys(keyPrefix + "networks/")); n != 2*per {
		t.Errorf("%d network records in the store, want %d", n, 2*per)
	}
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDeleteNetwork: refused while any host publishes an endpoint on the network (naming that
// host), allowed once it is withdrawn, idempotent, and it takes every claim of the network
// along, so that its name, VNI and subnet can be had again.
func TestDeleteNetwork(t *testing.T) {
	e := newEnv(t)
	s1, s2 := e.store(0), e.store(1)
	ctx := context.Background()
	rec := create(t, s1, "ov-del", prefixes("10.30.0.0/24"), nil)
	other := create(t, s1, "ov-keep", nil, nil)

	alloc := s2.Allocator()
	pool := requestPool(t, alloc, rec)
	addr, err := alloc.RequestAddress(pool.ID, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint(rec.ID, "c1", netip.PrefixFrom(addr, 24))
	if err := s2.PublishEndpoint(ctx, ep); err != nil {
		t.Fatal(err)
	}

	_, err = s1.DeleteNetwork(ctx, rec)
	if !errdefs.Is(err, errdefs.KindForbidden) || !strings.Contains(err.Error(), "active endpoints") || !strings.Contains(err.Error(), "host2") {
		t.Fatalf("deleting a network in use: %v (kind %v), want Forbidden naming host2", err, errdefs.KindOf(err))
	}
	if _, _, ok := e.get(keyPrefix + "names/ov-del"); !ok {
		t.Fatal("a refused removal dropped the name claim")
	}

	if err := s2.WithdrawEndpoint(ctx, rec.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.DeleteNetwork(ctx, rec); err != nil {
		t.Fatalf("deleting an unused network: %v", err)
	}
	if _, err := s2.DeleteNetwork(ctx, rec); err != nil {
		t.Errorf("deleting it again, from the other host: %v", err)
	}
	for _, k := range []string{"networks/" + rec.ID, "names/ov-del", "segments/4096", "subnets/10.30.0.0-24", "addrs/" + rec.ID + "/"} {
		if left := e.keys(keyPrefix + k); len(left) != 0 {
			t.Errorf("after removal the store still has %v", left)
		}
	}
	if _, _, ok := e.get(keyPrefix + "names/ov-keep"); !ok {
		t.Error("removing ov-del took ov-keep's name along")
	}

	// The freed claims can be had again; the other network keeps its own.
	again, err := s2.CreateNetwork(ctx, netID("ov-del, second"), "ov-del", prefixes("10.30.0.0/24"), nil, build)
	if err != nil {
		t.Fatalf("re-creating a removed network: %v", err)
	}
	if again.SegmentID != rec.SegmentID {
		t.Errorf("re-created network got VNI %d, want the freed %d", again.SegmentID, rec.SegmentID)
	}
	// A stale record of the first incarnation (same name, old ID) must not remove the new one.
	if _, err := s1.DeleteNetwork(ctx, rec); err != nil {
		t.Fatalf("deleting a network already gone: %v", err)
	}
	for _, k := range []string{"names/ov-del", "segments/4096", "subnets/10.30.0.0-24", "networks/" + again.ID} {
		if _, _, ok := e.get(keyPrefix + k); !ok {
			t.Errorf("removing the old incarnation took the new one's %s", k)
		}
	}
	if v, _, _ := e.get(keyPrefix + "segments/4097"); v != other.ID {
		t.Errorf("ov-keep's VNI claim is %q, want %q", v, other.ID)
	}
}

// TestCreateNetworkRepeated: a creation repeated with the same ID (what op does when an
// attempt's answer was lost after it committed) gets the stored record back, not a refusal
// of its own name, and claims nothing more.
func TestCreateNetworkRepeated(t *testing.T) {
	e := newEnv(t)
	s1 := e.store(0)
	first := create(t, s1, "ov-r", nil, nil)
	before := e.keys(keyPrefix)
	again := create(t, s1, "ov-r", nil, nil)
	if again.SegmentID != first.SegmentID || !equalPrefixes(again.Subnets, first.Subnets) || string(again.Spec) != string(first.Spec) {
		t.Errorf("repeated creation returned %+v, want the stored %+v", again, first)
	}
	if after := e.keys(keyPrefix); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("a repeated creation changed the store:\nbefore %v\nafter  %v", before, after)
	}
}
