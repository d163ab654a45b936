// Package hostlocal serves the host's own TCP clients of published ports without NAT: a
// cgroup BPF program rewrites the destination of connect() from a published host address and
// port to the container's, so the connection is an ordinary one to the container's address
// from the bridge's (the same source address the masquerade of 127.0.0.1 gives the container).
// Packets then take the host→container path with no DNAT or SNAT per packet; on this machine
// that path carries ~10% more than DNAT from 127.0.0.1 (see README, "Measured").
//
// It is a shortcut beside the firewall's DNAT, never instead of it: every published port is
// in both, and whatever the program does not translate (UDP and SCTP, other namespaces, other
// hosts, a daemon that is down) is served by the nftables rules. The programs are attached
// through BPF links owned by the daemon's process, so a daemon that exits or crashes takes them
// and their maps with it, and a daemon that starts attaches fresh ones and fills them from its
// records: nothing stale can outlive the process that knows the ports.
//
// The programs are attached to the root of the cgroup v2 hierarchy, where every process's
// connect() passes, and act only in the daemon's network namespace (compared by netns
// cookie). getpeername() on a translated socket gives the address the process connected to;
// getsockname() gives the bridge address the connection really has.
package hostlocal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

const (
	servicesMap = "services"
	peersMap    = "peers"
	// maxServices bounds the published TCP ports (per host address) the program translates:
	// every port of the 1-65535 range, on several addresses. The map is not preallocated.
	maxServices = 1 << 18
	// maxPeers bounds the translated sockets whose original peer getpeername can give back;
	// the oldest are forgotten first (their getpeername then gives the container's address).
	maxPeers = 1 << 14
)

// Service is one published TCP port: connections to Host go to Container.
type Service struct {
	Host      netip.AddrPort // a zero or 0.0.0.0 address: every loopback address
	Container netip.AddrPort
}

// Redirector owns the programs, their maps and their links. Its methods are safe for
// concurrent use.
type Redirector struct {
	mu       sync.Mutex
	services *ebpf.Map
	peers    *ebpf.Map
	progs    []*ebpf.Program
	links    []link.Link
}

// Attach loads the programs for the calling thread's network namespace and attaches them to
// the root of the cgroup v2 hierarchy. An error means the host cannot have the shortcut
// (no cgroup v2, no BPF): published ports then work through NAT alone.
func Attach() (*Redirector, error) {
	cookie, err := netnsCookie()
	if err != nil {
		return nil, err
	}
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	r := &Redirector{}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()
	if r.services, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cnet_services", Type: ebpf.Hash, KeySize: 8, ValueSize: 8,
		MaxEntries: maxServices, Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return nil, fmt.Errorf("creating the BPF map of published ports: %w", err)
	}
	if r.peers, err = ebpf.NewMap(&ebpf.MapSpec{Name: "cnet_peers", Type: ebpf.LRUHash, KeySize: 8, ValueSize: 16,
		MaxEntries: maxPeers}); err != nil {
		return nil, fmt.Errorf("creating the BPF map of translated sockets: %w", err)
	}
	cg, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("opening the cgroup v2 root: %w", err)
	}
	defer cg.Close()
	for _, p := range []struct {
		name   string
		attach ebpf.AttachType
		insns  asm.Instructions
	}{
		{"cnet_connect4", ebpf.AttachCGroupInet4Connect, connectProg(cookie)},
		{"cnet_peername4", ebpf.AttachCgroupInet4GetPeername, getpeernameProg()},
	} {
		insns, err := r.resolve(p.insns)
		if err != nil {
			return nil, err
		}
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: p.name, Type: ebpf.CGroupSockAddr, AttachType: p.attach,
			Instructions: insns, License: "GPL"})
		if err != nil {
			return nil, fmt.Errorf("loading BPF program %s: %w", p.name, err)
		}
		r.progs = append(r.progs, prog)
		// A link, never a plain attachment: a link goes when its last fd closes, so the
		// program cannot outlive the daemon.
		l, err := link.AttachRawLink(link.RawLinkOptions{Target: int(cg.Fd()), Program: prog, Attach: p.attach})
		if err != nil {
			return nil, fmt.Errorf("attaching BPF program %s to %s: %w", p.name, root, err)
		}
		r.links = append(r.links, l)
	}
	ok = true
	return r, nil
}

// Close detaches the programs and frees the maps. Connections already made stay as they are.
func (r *Redirector) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, l := range r.links {
		errs = append(errs, l.Close())
	}
	for _, p := range r.progs {
		errs = append(errs, p.Close())
	}
	for _, m := range []*ebpf.Map{r.services, r.peers} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	r.links, r.progs, r.services, r.peers = nil, nil, nil, nil
	return errors.Join(errs...)
}

// Add translates connections to each service's host address. On error nothing was added.
func (r *Redirector) Add(svcs []Service) error {
	if len(svcs) == 0 {
		return nil
	}
	keys, values, err := encode(svcs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, err := r.services.BatchUpdate(keys, values, nil); err != nil {
		if n > 0 {
			_, _ = r.services.BatchDelete(keys[:n], nil)
		}
		return fmt.Errorf("adding %d published ports to the BPF map of connect() translations (cnet daemon --no-connect-translation leaves them to NAT): %w", len(svcs), err)
	}
	return nil
}

// Remove stops translating the services' host addresses. Missing ones are not an error.
func (r *Redirector) Remove(svcs []Service) error {
	keys, _, err := encode(svcs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	// A batch stops at the first key missing; n is how many went before it.
	for len(keys) > 0 {
		n, err := r.services.BatchDelete(keys, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("removing published ports from the BPF map: %w", err)
		}
		keys = keys[n+1:]
	}
	return nil
}

// Len is the number of services translated.
func (r *Redirector) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	var k, v [8]byte
	for it := r.services.Iterate(); it.Next(&k, &v); {
		n++
	}
	return n
}

// resolve points the instructions' map references at r's maps.
func (r *Redirector) resolve(insns asm.Instructions) (asm.Instructions, error) {
	for name, m := range map[string]*ebpf.Map{servicesMap: r.services, peersMap: r.peers} {
		if err := insns.AssociateMap(name, m); err != nil && !errors.Is(err, asm.ErrUnreferencedSymbol) {
			return nil, fmt.Errorf("linking BPF map %s: %w", name, err)
		}
	}
	return insns, nil
}

// encode gives the services map's keys (host ip4, port) and values (container ip4, port) as
// the program reads them: addresses and ports in network byte order.
func encode(svcs []Service) (keys, values [][8]byte, err error) {
	keys = make([][8]byte, len(svcs))
	values = make([][8]byte, len(svcs))
	for i, s := range svcs {
		host := s.Host.Addr()
		if !host.IsValid() {
			host = netip.IPv4Unspecified()
		}
		if !host.Is4() || !s.Container.Addr().Is4() {
			return nil, nil, fmt.Errorf("published port %s → %s: only IPv4 is translated", s.Host, s.Container)
		}
		put(&keys[i], host, s.Host.Port())
		put(&values[i], s.Container.Addr(), s.Container.Port())
	}
	return keys, values, nil
}

func put(b *[8]byte, a netip.Addr, port uint16) {
	ip := a.As4()
	copy(b[:4], ip[:])
	binary.BigEndian.PutUint16(b[4:6], port)
}

// netnsCookie is the calling thread's network namespace's cookie, as bpf_get_netns_cookie
// gives it.
func netnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("opening a socket to read the namespace cookie: %w", err)
	}
	defer unix.Close(fd)
	c, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("reading the network namespace cookie (Linux 5.14 or later): %w", err)
	}
	return c, nil
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup, or
// /sys/fs/cgroup/unified on hosts with both versions), as the calling thread sees its mounts.
// A mount listed in mountinfo may be hidden under a later one (a fresh sysfs over /sys), so the
// path must still be cgroup2.
func cgroup2Root() (string, error) {
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("reading the mount table: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 || g[0] != "cgroup2" {
			continue
		}
		var st unix.Statfs_t
		if unix.Statfs(f[4], &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return f[4], nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}
