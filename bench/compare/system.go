package main

import (
	"time"
)

// A system is one container networking stack under test: cnet, Docker, Podman or the CNI
// reference plugins. Each runs in a throwaway host network namespace of its own, so that all
// stand on the same footing and none touches the machine's own network. A system implements
// the benchmark interfaces below that make sense for it; the report says "n/a" for the others.
type system interface {
	// Name is the column heading in the report ("cnet", "Docker", "Podman", "CNI").
	Name() string
	// Start brings the system up: its namespace, its daemon if it has one, the busybox image.
	Start(env *Env) error
	// Stop stops and removes everything Start and the benchmarks made: processes, state
	// directories, namespaces, interfaces, firewall tables. Safe to call after a failed Start
	// and more than once.
	Stop() error
}

// attacher is benchmark 1: attaching containers to a network one at a time, and detaching them.
type attacher interface {
	// PrepareAttach makes n running containers (or, for CNI, n network namespaces) that are
	// not yet on the network the benchmark attaches them to, and that network. Not timed.
	PrepareAttach(n int) error
	// Attach connects the i-th (0-based) of them to that network the way a user of the system
	// does (see each system's doc comment) and returns how long that took.
	Attach(i int) (time.Duration, error)
	// Detach disconnects the i-th again and returns how long that took.
	Detach(i int) (time.Duration, error)
}

// publisher is benchmark 2: one container publishing a range of host ports.
type publisher interface {
	// PublishRange starts one container publishing host ports first..first+count-1 (TCP) to the
	// same container ports, and reports what that cost.
	PublishRange(first, count int) (PublishResult, error)
}

// PublishResult is what publishing a port range cost.
type PublishResult struct {
	Wall        time.Duration // the run command with the range, start to finish
	Procs       int           // processes alive afterwards that were not before (proxies, ...)
	DaemonMemKB int           // daemon RSS after minus before, KiB; -1 when there is no daemon
	Rules       int           // firewall rules added (nftables rules, iptables-nft included)
	Elements    int           // set and map elements added (how cnet keeps its ports)
}

// resolver is benchmark 3: the embedded DNS server under dnsperf.
type resolver interface {
	// DNS starts names containers on one network and one more as the client, then runs dnsperf
	// inside the client's network namespace against the resolver its resolv.conf names
	// (127.0.0.11 for cnet and Docker, the network's gateway for Podman's aardvark-dns),
	// querying the names of the others (A records).
	DNS(names int, cfg DNSConfig) (DNSResult, error)
}

// DNSConfig is how dnsperf is run, the same for every system.
type DNSConfig struct {
	Seconds int // dnsperf -l
	Clients int // dnsperf -c
}

// DNSResult is what dnsperf printed.
type DNSResult struct {
	QPS        float64
	Lost       int
	AvgLatency time.Duration
}

// dataPather is benchmark 4: TCP throughput with iperf3 over the system's data paths, each
// measured in turn with the paths in also.
type dataPather interface {
	DataPath(seconds int, also []path) (DataPathResult, error)
}

// DataPathResult holds iperf3 throughputs in Gbit/s; 0 means not measured.
type DataPathResult struct {
	Published  float64 // host → 127.0.0.1:published port → container
	Direct     float64 // host → the container's IP on its bridge
	CtrToCtr   float64 // container → container on one bridge
	ProxyProcs int     // processes carrying the published-port traffic (userland proxies)
}

// scaler is benchmark 5: the daemon with many containers.
type scaler interface {
	Scale(n int) (ScaleResult, error)
}

// ScaleResult is the daemon's footprint with n containers running.
type ScaleResult struct {
	DaemonRSSKB int           // daemon RSS with the containers running, KiB
	Restart     time.Duration // daemon stopped, started again, until it lists all n running
}
