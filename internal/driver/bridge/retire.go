package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/nldump"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// Deleting a veth pair costs ~15 ms of kernel time, nearly all of it waiting for RCU
// callbacks after the devices are unregistered (netdev_run_todo's rcu_barrier), against ~4 ms
// for a whole attach. A disconnect therefore retires the endpoint instead: within the call
// the pair is taken out of service (both ends down, the sandbox end stripped of its addresses
// and both renamed, so the sandbox's ethN and the address are free at once), and a goroutine
// of the driver deletes the pair afterwards. A daemon killed before that leaves a down veth on
// the bridge that no record owns, which Restore deletes at the next start, as any stray.

// retiredPrefix names retired ends ("rt" + 12 hex of the endpoint ID), so that they are
// recognisable and never collide with a live endpoint's names.
const retiredPrefix = "rt"

// reaper deletes retired veth pairs in the background. The zero value deletes synchronously.
type reaper struct {
	mu      sync.Mutex
	queue   chan string // host ends to delete
	done    chan struct{}
	running bool
}

// Start implements driver.Lifecycle: the reaper runs until ctx ends or Close.
func (d *Driver) Start(ctx context.Context) error {
	r := &d.reaper
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return errors.New("bridge driver started twice")
	}
	r.queue, r.done, r.running = make(chan string, 4096), make(chan struct{}), true
	go r.run(ctx, r.queue, r.done)
	return nil
}

// Close implements driver.Lifecycle: it deletes what is still queued and stops the reaper.
func (d *Driver) Close() error {
	r := &d.reaper
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return nil
	}
	close(r.queue)
	r.running = false
	done := r.done
	r.mu.Unlock()
	<-done
	return nil
}

func (r *reaper) run(ctx context.Context, queue <-chan string, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case name, ok := <-queue:
			if !ok {
				return
			}
			if err := deleteLink(name); err != nil {
				slog.Error("deleting a retired veth pair (the next start deletes it)", "link", name, "err", err)
			}
		case <-ctx.Done():
			for name := range queue {
				_ = deleteLink(name)
			}
			return
		}
	}
}

// reap queues a retired host end for deletion, or deletes it now when the reaper is not
// running (or is full).
func (r *reaper) reap(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		select {
		case r.queue <- name:
			return nil
		default:
		}
	}
	return deleteLink(name)
}

// Retire implements driver.Retirer: see the top of this file.
func (d *Driver) Retire(n driver.Network, ep driver.Endpoint) error {
	host, err := nldump.LinkByName(nil, ep.HostIfName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil // already gone
		}
		return fmt.Errorf("looking up %s: %w", ep.HostIfName, err)
	}
	retired := retiredPrefix + ep.ID[:12]
	if err := netlink.LinkSetDown(host); err != nil {
		return fmt.Errorf("taking %s down: %w", ep.HostIfName, err)
	}
	if err := retireSandboxEnd(ep, retired); err != nil {
		// The pair is down either way; delete it now, as Leave does.
		slog.Debug("retiring the sandbox end failed; deleting the pair at once", "endpoint", ep.ID[:12], "err", err)
		return d.Leave(n, ep)
	}
	if err := netlink.LinkSetName(host, retired); err != nil {
		return d.Leave(n, ep)
	}
	return d.reaper.reap(retired)
}

// retireSandboxEnd takes the sandbox's end down, removes its addresses and renames it, so the
// sandbox's ethN name and the address are free before the pair is deleted.
func retireSandboxEnd(ep driver.Endpoint, retired string) error {
	h, err := sandbox.Handle(ep.SandboxPath)
	if err != nil {
		return err
	}
	defer h.Close()
	peer, err := nldump.LinkByName(h, ep.IfName)
	if err != nil {
		return err
	}
	if err := h.LinkSetDown(peer); err != nil {
		return err
	}
	addrs, err := nldump.AddrList(h, peer, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if err := h.AddrDel(peer, &a); err != nil {
			return err
		}
	}
	return h.LinkSetName(peer, retired)
}
