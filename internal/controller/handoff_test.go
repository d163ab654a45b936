package controller

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/ipam"
	"github.com/cnet-dev/cnet/internal/store"
)

// handOffSandbox is the hand-off sandbox of an engine's endpoint holding reserved address a.
func handOffSandbox(id string, a netip.Addr) SandboxConfig {
	return SandboxConfig{ContainerID: id, ContainerName: "engine-ep", HandOff: true, Networks: []Attachment{{
		Network: "n", Options: JoinOptions{ContainerName: "engine-ep", IP: a.String(), Reserved: true, IfName: "cndabc"}}}}
}

// TestHandOff drives another engine's order of steps through the fakes: reserve, join with the
// reservation (no namespace of cnet's, the driver's hand-off join), stop, release; and the
// refusals and rollbacks on the way, each checked against the exact steps taken and what is
// left in the store and the allocator.
func TestHandOff(t *testing.T) {
	const ctr = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name     string
		run      func(t *testing.T, c *Controller, j *journal) error
		want     []string     // the journal after the network's creation
		kind     errdefs.Kind // of the error, KindUnknown for none
		injected bool         // the error is the injected failure
		// reservations and endpoints left recorded
		reservations, endpoints int
	}{
		{"whole life", func(t *testing.T, c *Controller, j *journal) error {
			a, err := c.ReserveAddress("n", netip.Addr{})
			if err != nil {
				return err
			}
			if _, err := c.StartSandbox(handOffSandbox(ctr, a.Addr())); err != nil {
				return err
			}
			if err := c.StopSandbox(ctr); err != nil {
				return err
			}
			return c.ReleaseReservation("n", a.Addr())
		}, []string{"ipam.RequestAddress", "driver.JoinHandOff", "driver.Leave", "ns.Delete", "ipam.ReleaseAddress"}, errdefs.KindUnknown, false, 0, 0},
		{"join without a reservation", func(t *testing.T, c *Controller, j *journal) error {
			_, err := c.StartSandbox(handOffSandbox(ctr, netip.MustParseAddr("10.1.0.3")))
			return err
		}, []string{"ns.Delete"}, errdefs.KindInvalid, false, 0, 0},
		{"driver fails: the reservation stays", func(t *testing.T, c *Controller, j *journal) error {
			a, err := c.ReserveAddress("n", netip.MustParseAddr("10.1.0.4"))
			if err != nil || a.String() != "10.1.0.4/29" {
				t.Fatalf("reserved %v, %v; want 10.1.0.4/29", a, err)
			}
			j.failAt = "driver.JoinHandOff"
			_, err = c.StartSandbox(handOffSandbox(ctr, a.Addr()))
			return err
		}, []string{"ipam.RequestAddress", "driver.JoinHandOff", "ns.Delete"}, errdefs.KindUnknown, true, 1, 0},
		{"release while joined is refused", func(t *testing.T, c *Controller, j *journal) error {
			a, err := c.ReserveAddress("n", netip.Addr{})
			if err != nil {
				return err
			}
			if _, err := c.StartSandbox(handOffSandbox(ctr, a.Addr())); err != nil {
				return err
			}
			return c.ReleaseReservation("n", a.Addr())
		}, []string{"ipam.RequestAddress", "driver.JoinHandOff"}, errdefs.KindConflict, false, 1, 1},
		{"a taken address is refused", func(t *testing.T, c *Controller, j *journal) error {
			if _, err := c.ReserveAddress("n", netip.MustParseAddr("10.1.0.2")); err != nil {
				return err
			}
			_, err := c.ReserveAddress("n", netip.MustParseAddr("10.1.0.2"))
			return err
		}, []string{"ipam.RequestAddress", "ipam.RequestAddress"}, errdefs.KindConflict, false, 1, 0},
		{"releasing what is not reserved is not an error", func(t *testing.T, c *Controller, j *journal) error {
			return c.ReleaseReservation("n", netip.MustParseAddr("10.1.0.5"))
		}, nil, errdefs.KindUnknown, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, j, _, st := newFakeController(t)
			if _, err := c.CreateNetwork(NetworkConfig{Name: "n", Driver: "fake", Pools: []PoolRequest{{Subnet: "10.1.0.0/29"}}}); err != nil {
				t.Fatal(err)
			}
			j.calls = nil
			err := tt.run(t, c, j)
			switch {
			case tt.injected:
				if !errors.Is(err, errInjected) {
					t.Fatalf("error %v, want the injected failure", err)
				}
			case tt.kind == errdefs.KindUnknown:
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
			case !errdefs.Is(err, tt.kind):
				t.Fatalf("error %v, want kind %v", err, tt.kind)
			}
			j.check(t, tt.want)
			if n := records(t, st, store.Reservations); n != tt.reservations {
				t.Errorf("%d reservations recorded, want %d", n, tt.reservations)
			}
			if n := records(t, st, store.Endpoints); n != tt.endpoints {
				t.Errorf("%d endpoints recorded, want %d", n, tt.endpoints)
			}
		})
	}
}

// TestReservationsSurviveRestart: a controller started on the same store takes reserved
// addresses back, so the next free address skips them; removing the network drops them.
func TestReservationsSurviveRestart(t *testing.T) {
	c, _, _, st := newFakeController(t)
	if _, err := c.CreateNetwork(NetworkConfig{Name: "n", Driver: "fake", Pools: []PoolRequest{{Subnet: "10.1.0.0/29"}}}); err != nil {
		t.Fatal(err)
	}
	a, err := c.ReserveAddress("n", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	c2 := reopen(t, st)
	b, err := c2.ReserveAddress("n", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("after a restart the reserved %s was handed out again", a)
	}
	if err := c2.RemoveNetwork("n"); err != nil {
		t.Fatal(err)
	}
	if n := records(t, st, store.Reservations); n != 0 {
		t.Errorf("%d reservations left after the network's removal", n)
	}
}

// reopen is a controller started again on st, with fresh fakes and an empty allocator.
func reopen(t *testing.T, st *store.Store) *Controller {
	t.Helper()
	j := &journal{}
	reg, err := driver.NewRegistry(fakeDriver{j})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Store: st, ExecRoot: t.TempDir(), Drivers: reg,
		IPAM: map[string]ipam.Allocator{"default": fakeIPAM{j, ipam.NewLocal()}}, Namespaces: fakeNamespaces{j, map[string]bool{}},
		Firewall: noFirewall{}, NoConnectTranslation: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
