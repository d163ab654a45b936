package cluster

import (
	"context"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchGate stands between a Store and its etcd client's watches so that a test can break
// the store's watch and keep it from resuming for as long as it likes, while every other call
// still reaches etcd: the only way to make a watch miss events deterministically (a restarted
// etcd races the client's reconnection). Nothing of the Store's own code changes.
type WatchGate struct {
	clientv3.Watcher

	mu      sync.Mutex
	open    chan struct{} // closed while watches may run
	cancels []context.CancelFunc
}

// GateWatches installs a gate, open, on s; call it before s.Start.
func GateWatches(s *Store) *WatchGate {
	g := &WatchGate{Watcher: s.cli.Watcher, open: make(chan struct{})}
	close(g.open)
	s.cli.Watcher = g
	return g
}

// Break ends every running watch with an error, as a lost connection would, and holds new
// ones until Open.
func (g *WatchGate) Break() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
	for _, c := range g.cancels {
		c()
	}
	g.cancels = nil
}

// Open lets watches run again.
func (g *WatchGate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// Watch implements clientv3.Watcher.
func (g *WatchGate) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	out := make(chan clientv3.WatchResponse)
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		close(out)
		return out
	}
	wctx, cancel := context.WithCancel(ctx)
	g.mu.Lock()
	g.cancels = append(g.cancels, cancel)
	g.mu.Unlock()
	in := g.Watcher.Watch(wctx, key, opts...)
	go func() {
		defer close(out)
		for r := range in {
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() == nil {
			// Broken by the gate: a canceled response is an error to the reader.
			select {
			case out <- clientv3.WatchResponse{Canceled: true}:
			case <-ctx.Done():
			}
		}
	}()
	return out
}
