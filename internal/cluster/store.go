package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cnet-dev/cnet/internal/errdefs"
)

const prefix = "/cnet/v1/"

// Key builders: the one place that knows the layout described in the package comment.
func hostKey(id string) string     { return prefix + "hosts/" + id }
func networkKey(id string) string  { return prefix + "networks/" + id }
func nameKey(name string) string   { return prefix + "names/" + name }
func segmentKey(vni uint32) string { return fmt.Sprintf("%ssegments/%d", prefix, vni) }
func subnetKey(p netip.Prefix) string {
	return prefix + "subnets/" + strings.Replace(p.String(), "/", "-", 1)
}
func addrPrefix(netID string) string            { return prefix + "addrs/" + netID + "/" }
func addrKey(netID string, a netip.Addr) string { return addrPrefix(netID) + a.String() }
func endpointPrefix(netID string) string        { return prefix + "endpoints/" + netID + "/" }
func endpointKey(netID, epID string) string {
	return endpointPrefix(netID) + epID
}

// cooldownValue marks an address given back and not yet free.
const cooldownValue = "cooldown"

func ownerValue(hostID string) string { return "host:" + hostID }

// HostRecord is a host of the cluster.
type HostRecord struct {
	ID   string
	Name string
	VTEP netip.Addr
}

// NetworkRecord is a global network: what the cluster needs to know of it, and Spec, the
// controller's own record, opaque here.
type NetworkRecord struct {
	ID        string
	Name      string
	SegmentID uint32
	Subnets   []netip.Prefix
	Spec      json.RawMessage
	// Revision is the store's revision at which this host wrote or read the record (not
	// stored): a view of the store older than it does not know the network yet.
	Revision int64 `json:"-"`
}

// EndpointRecord is an endpoint of a global network as every host sees it.
type EndpointRecord struct {
	ID          string
	NetworkID   string
	ContainerID string
	Host        string // host ID
	HostName    string
	VTEP        netip.Addr
	Address     netip.Prefix
	// Address6 is the endpoint's IPv6 address on networks with IPv6.
	Address6 netip.Prefix `json:",omitempty"`
	MAC      string
	// Names are what resolve to Address (and Address6) on the network: container name,
	// aliases, hostname, short ID.
	Names []string
}

// Store is this host's handle on the cluster store. Safe for concurrent use. Its mutex is a
// leaf: nothing is called while holding it.
type Store struct {
	cfg Config
	cli *clientv3.Client
	url string // for messages

	// passMu orders a reconcile pass's writes of this host's endpoints against a withdraw
	// (held across their etcd calls, each bounded by OpTimeout); taken before mu and before
	// the allocator's lock, never while holding either.
	passMu sync.Mutex

	mu      sync.Mutex
	lease   clientv3.LeaseID // 0 until granted, and again after it expired
	own     map[string]EndpointRecord
	cache   cache
	changed chan struct{} // signalled (non-blocking) after the cache changed, for the controller
	kick    chan struct{} // the same, for the lease loop
	ipam    *allocator
	// down is why the store last failed to answer, nil while it answers. Set by calls that
	// ran out of time and by the lease loop, cleared by any answer (see op).
	down     error
	stopOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

// Open makes the etcd client. It does not wait for etcd: a daemon starts and keeps its
// containers running while the store is down, and overlay operations fail until it is back.
func Open(cfg Config) (*Store, error) {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.OpTimeout == 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if !cfg.VTEP.IsValid() {
		return nil, errdefs.Invalid("--cluster-store needs --cluster-advertise: the address other hosts reach this one at")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		TLS:                  cfg.TLS,
		DialTimeout:          cfg.OpTimeout,
		DialKeepAliveTime:    cfg.TTL / 2,
		DialKeepAliveTimeout: cfg.OpTimeout,
		AutoSyncInterval:     0,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("making the etcd client for %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &Store{cfg: cfg, cli: cli, url: "etcd://" + strings.Join(cfg.Endpoints, ","),
		own: map[string]EndpointRecord{}, cache: newCache(), changed: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
	s.ipam = newAllocator(s)
	return s, nil
}

// HostID is this host's ID in the cluster.
func (s *Store) HostID() string { return s.cfg.HostID }

// VTEP is this host's tunnel endpoint address.
func (s *Store) VTEP() netip.Addr { return s.cfg.VTEP }

// URL is the store as the user gave it, for messages.
func (s *Store) URL() string { return s.url }

// Changed is signalled each time the store's view of the cluster changed (coalesced).
func (s *Store) Changed() <-chan struct{} { return s.changed }

func (s *Store) notify() {
	for _, ch := range []chan struct{}{s.changed, s.kick} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Start runs the host's lease, the watch and the reconcile loop until Close. The daemon calls
// it once its controller has restored this host's endpoints (AdoptEndpoint) and addresses
// (the allocator's RestoreAddress): from then on, whatever of this host the store holds that
// the host does not have is removed.
func (s *Store) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.done = make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.leaseLoop(ctx) }()
	go func() { defer wg.Done(); s.watchLoop(ctx) }()
	go func() { wg.Wait(); close(s.done) }()
}

// Close stops the loops and the client. This host's records stay: its lease runs out by
// itself if the daemon does not come back, and a restarted daemon takes them over.
func (s *Store) Close() error {
	s.stopOnce.Do(func() {
		if s.stop != nil {
			s.stop()
			<-s.done
		}
	})
	return s.cli.Close()
}

// op runs one call the user waits for under the store's deadline, and turns a store that does
// not answer into an error saying so.
//
// Within the deadline, an attempt that fails for a reason of the store's (not a refusal with
// a kind) is made again, each attempt bounded by a third of the deadline: a member that died
// with a request in flight, or a connection the client has not yet seen die, costs one
// attempt instead of the whole deadline. Every fn must be safe to repeat: cnet's writes are
// compare-and-swap transactions that recognise their own earlier success.
//
// A store known to be down (the last call or lease renewal got no answer) is not waited for
// again: the operation fails at once until the lease loop, which keeps trying every third of
// the TTL, hears from it. So while etcd is away only the first overlay operation waits out the
// deadline, and nothing waits behind the controller's lock for it.
func (s *Store) op(parent context.Context, what string, fn func(ctx context.Context) error) error {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down != nil {
		return errdefs.Unavailable("%s: the cluster store %s is unreachable (%v); overlay operations fail until it answers again, which this host checks every %s",
			what, s.url, down, s.cfg.TTL/3)
	}
	ctx, cancel := context.WithTimeout(parent, s.cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	var err error
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, s.cfg.OpTimeout/3)
		err = fn(actx)
		acancel()
		slog.Debug("cluster store call", "what", what, "attempt", attempt, "took", time.Since(start), "err", err)
		if err == nil || errdefs.KindOf(err) != errdefs.KindUnknown || ctx.Err() != nil {
			break
		}
		sleep(ctx, 20*time.Millisecond)
	}
	if err == nil || errdefs.KindOf(err) != errdefs.KindUnknown {
		s.setReachable(nil) // it answered
		return err
	}
	if parent.Err() == nil {
		s.setReachable(err)
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return errdefs.Unavailable("%s: the cluster store %s did not answer within %s (is etcd reachable from this host?): %w", what, s.url, s.cfg.OpTimeout, err)
	}
	return errdefs.Unavailable("%s: the cluster store %s failed: %w", what, s.url, err)
}

// setReachable records whether the store answered (err nil) or not.
func (s *Store) setReachable(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (s.down == nil) != (err == nil) {
		if err == nil {
			slog.Info("the cluster store answers again", "store", s.url)
		} else {
			slog.Warn("the cluster store does not answer; overlay operations fail until it does", "store", s.url, "err", err)
		}
	}
	s.down = err
}

// currentLease returns the host's lease, granting one (and registering the host) if it has
// none: the first overlay operation after a start with etcd down, or after the lease expired.
func (s *Store) currentLease(ctx context.Context) (clientv3.LeaseID, error) {
	s.mu.Lock()
	id := s.lease
	s.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	g, err := s.cli.Grant(ctx, int64(s.cfg.TTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("granting this host's lease: %w", err)
	}
	rec, _ := json.Marshal(HostRecord{ID: s.cfg.HostID, Name: s.cfg.HostName, VTEP: s.cfg.VTEP})
	if _, err := s.cli.Put(ctx, hostKey(s.cfg.HostID), string(rec), clientv3.WithLease(g.ID)); err != nil {
		return 0, fmt.Errorf("registering this host: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease != 0 {
		// Another caller got one first; ours expires unused.
		return s.lease, nil
	}
	s.lease = g.ID
	slog.Info("registered in the cluster store", "store", s.url, "host", s.cfg.HostID[:12], "vtep", s.cfg.VTEP, "lease", fmt.Sprintf("%x", int64(g.ID)))
	return g.ID, nil
}

func (s *Store) dropLease(id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lease == id {
		s.lease = 0
	}
}
