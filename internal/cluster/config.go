// Package cluster is cnet's cluster store: the records of global-scope networks, of the
// addresses they hand out and of their endpoints, kept in etcd so that every host of a cluster
// sees the same networks. It is the control plane of overlay networks, on an existing
// distributed store as Flannel and Calico do it: no Swarm, no gossip layer of cnet's own.
//
// What lives where (prefix /cnet/v1/):
//
//	hosts/<host-id>            a host and its VTEP address      under the host's lease
//	networks/<network-id>      a global network's record        persistent
//	names/<name>               network name → ID (uniqueness)   persistent
//	segments/<vni>             VNI → network ID                 persistent
//	subnets/<a.b.c.d-len>      subnet → network ID              persistent
//	addrs/<network-id>/<ip>    "host:<id>", or "cooldown"       persistent; cooldown under a short lease
//	endpoints/<net-id>/<ep-id> an endpoint, its names, its VTEP under its host's lease
//
// Claims (name, VNI, subnet, address) are made with compare-and-swap transactions, so two
// hosts asking at once never get the same one. Endpoints live under their host's lease: a
// host that dies disappears from every other host within about the lease's TTL, without
// anyone having to notice it died. Addresses do not: a restarted host takes its containers'
// addresses back, and an address given back waits out a cooldown before it is handed out
// again, so that no stale neighbour entry elsewhere points a new container's address at an
// old MAC.
package cluster

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
)

// Config is how a daemon joins the cluster.
type Config struct {
	// Endpoints are etcd's client addresses, host:port.
	Endpoints []string
	// TLS, when set, is used to reach etcd (--cluster-store-opt kv.cacertfile, kv.certfile,
	// kv.keyfile).
	TLS *tls.Config
	// HostID identifies this host in the cluster; it must survive restarts (the daemon keeps
	// it in its data root).
	HostID   string
	HostName string
	// VTEP is the address other hosts reach this one at (--cluster-advertise).
	VTEP netip.Addr
	// TTL of the host's lease (--cluster-store-opt discovery.ttl): how long a dead host's
	// endpoints stay in the other hosts' tables.
	TTL time.Duration
	// OpTimeout bounds every call to etcd that a user waits for: an unreachable store fails
	// the operation after it instead of hanging it.
	OpTimeout time.Duration
	// Cooldown is how long a released address waits before it is handed out again.
	Cooldown time.Duration
}

// Defaults for the options a user may leave out.
const (
	DefaultTTL       = 10 * time.Second
	DefaultOpTimeout = 3 * time.Second
	DefaultCooldown  = 30 * time.Second
)

// ParseStoreURL reads --cluster-store: etcd://HOST:PORT[,HOST:PORT...].
func ParseStoreURL(s string) ([]string, error) {
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		return nil, errdefs.Invalid("invalid --cluster-store %q: want etcd://HOST:PORT[,HOST:PORT...] (etcd is the only cluster store cnet supports)", s)
	}
	var out []string
	for _, ep := range strings.Split(rest, ",") {
		ep = strings.TrimSuffix(strings.TrimSpace(ep), "/")
		if ep == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(ep); err != nil {
			return nil, errdefs.Invalid("invalid --cluster-store member %q: want HOST:PORT", ep)
		}
		out = append(out, ep)
	}
	if len(out) == 0 {
		return nil, errdefs.Invalid("invalid --cluster-store %q: no etcd member given", s)
	}
	return out, nil
}

// ApplyOptions reads --cluster-store-opt KEY=VALUE settings into cfg. Keys are Docker's
// historical ones: kv.cacertfile, kv.certfile, kv.keyfile, discovery.ttl (seconds or a Go
// duration), plus cnet's address.cooldown.
func ApplyOptions(cfg *Config, opts []string) error {
	var ca, cert, key string
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return errdefs.Invalid("invalid --cluster-store-opt %q: want KEY=VALUE", o)
		}
		switch k {
		case "kv.cacertfile":
			ca = v
		case "kv.certfile":
			cert = v
		case "kv.keyfile":
			key = v
		case "discovery.ttl", "address.cooldown":
			d, err := parseSeconds(v)
			if err != nil || d < time.Second {
				return errdefs.Invalid("invalid --cluster-store-opt %s=%q: want seconds (at least 1) or a duration such as 10s", k, v)
			}
			if k == "discovery.ttl" {
				cfg.TTL = d
			} else {
				cfg.Cooldown = d
			}
		default:
			return errdefs.Invalid("unknown --cluster-store-opt %q: cnet knows kv.cacertfile, kv.certfile, kv.keyfile, discovery.ttl and address.cooldown", k)
		}
	}
	if ca == "" && cert == "" && key == "" {
		return nil
	}
	if (cert == "") != (key == "") {
		return errdefs.Invalid("--cluster-store-opt kv.certfile and kv.keyfile go together")
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return errdefs.Invalid("reading kv.cacertfile: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return errdefs.Invalid("kv.cacertfile %s holds no PEM certificate", ca)
		}
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return errdefs.Invalid("loading kv.certfile and kv.keyfile: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	cfg.TLS = t
	return nil
}

func parseSeconds(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// ResolveAdvertise reads --cluster-advertise: an IPv4 address, or an interface whose first
// IPv4 address is used; a :PORT suffix (Docker's form, whose port was its API's) is ignored.
func ResolveAdvertise(s string) (netip.Addr, error) {
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return netip.Addr{}, errdefs.Invalid("--cluster-advertise %s: cnet's overlay runs over IPv4 underlays only", s)
		}
		return a, nil
	}
	link, err := nldump.LinkByName(nil, s)
	if err != nil {
		return netip.Addr{}, errdefs.Invalid("--cluster-advertise %q is neither an IP address nor an interface of this host: %w", s, err)
	}
	addrs, err := nldump.AddrList(nil, link, 2 /* AF_INET */)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the addresses of %s: %w", s, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok {
			return ip, nil
		}
	}
	return netip.Addr{}, errdefs.Invalid("--cluster-advertise %s: the interface has no IPv4 address", s)
}

// HostID returns this host's cluster ID, kept in dataRoot/host-id so that a restarted daemon
// is the same host to the cluster (its address claims stay its own).
func HostID(dataRoot string) (string, error) {
	path := dataRoot + "/host-id"
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) == 64 {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(dataRoot, 0o700); err != nil {
		return "", fmt.Errorf("creating data root %s: %w", dataRoot, err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing this host's cluster ID: %w", err)
	}
	return id, nil
}
