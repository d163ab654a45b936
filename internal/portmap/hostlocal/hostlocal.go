// Package hostlocal serves the host's own TCP clients of published ports without NAT: cgroup
// BPF programs rewrite the destination of connect() from a published host address and port to
// the container's, so the connection is an ordinary one to the container's address from the
// bridge's (the same source address the masquerade of 127.0.0.1 gives the container). Packets
// then take the host→container path with no DNAT or SNAT per packet; on this machine that path
// carries ~10% more than DNAT from 127.0.0.1 (see README, "Measured").
//
// There is a program for each family: connect4 for IPv4 sockets, connect6 for IPv6 ones, each
// with its own maps. For IPv6 the translation is more than a shortcut for [::1]: the kernel
// never routes a packet from ::1 out of lo (there is no route_localnet for IPv6), so NAT cannot
// carry the host's connections to [::1]:PORT to a container at all, and connect6 is what serves
// them over TCP. For the host's own global IPv6 addresses it spares the per-packet NAT as
// connect4 does. IPv4-mapped destinations (::ffff:a.b.c.d) of dual-stack sockets are left to
// the IPv4 NAT rules: the kernel carries them as IPv4, and connect4 does not see them.
//
// It is a shortcut beside the firewall's DNAT, never instead of it: every published port is
// in both, and whatever the programs do not translate (UDP and SCTP, other namespaces, other
// hosts, a daemon that is down) is served by the nftables rules (or, for [::1], by the userland
// proxy). The programs are attached through BPF links owned by the daemon's process, so a daemon
// that exits or crashes takes them and their maps with it, and a daemon that starts attaches
// fresh ones and fills them from its records: nothing stale can outlive the process that knows
// the ports.
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

// The maps' names in the programs' instructions.
const (
	servicesMap  = "services"
	peersMap     = "peers"
	services6Map = "services6"
	peers6Map    = "peers6"
)

const (
	// maxServices bounds the published TCP ports (per host address) a program translates:
	// every port of the 1-65535 range, on several addresses. The maps are not preallocated.
	maxServices = 1 << 18
	// maxPeers bounds the translated sockets (of a family) whose original peer getpeername can
	// give back; the oldest are forgotten first (their getpeername then gives the container's
	// address).
	maxPeers = 1 << 14
)

// Service is one published TCP port: connections to Host go to Container. Both are IPv4 or
// both are IPv6.
type Service struct {
	// Host is the published address and port. A zero or 0.0.0.0 address is the IPv4 wildcard,
	// which serves every 127.0.0.0/8 address; :: is the IPv6 one, which serves ::1.
	Host      netip.AddrPort
	Container netip.AddrPort
}

// Redirector owns the programs, their maps and their links. Its methods are safe for
// concurrent use.
type Redirector struct {
	mu        sync.Mutex
	services  *ebpf.Map // IPv4: host ip4, port → container ip4, port
	peers     *ebpf.Map // IPv4: socket cookie → original ip4, port, translated ip4, port
	services6 *ebpf.Map // IPv6: host ip6, port → container ip6, port
	peers6    *ebpf.Map // IPv6: socket cookie → original ip6, port, translated ip6, port
	progs     []*ebpf.Program
	links     []link.Link
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
	for _, m := range []struct {
		m    **ebpf.Map
		spec ebpf.MapSpec
		what string
	}{
		{&r.services, ebpf.MapSpec{Name: "cnet_services", Type: ebpf.Hash, KeySize: 8, ValueSize: 8,
			MaxEntries: maxServices, Flags: unix.BPF_F_NO_PREALLOC}, "published IPv4 ports"},
		{&r.peers, ebpf.MapSpec{Name: "cnet_peers", Type: ebpf.LRUHash, KeySize: 8, ValueSize: 16,
			MaxEntries: maxPeers}, "translated IPv4 sockets"},
		{&r.services6, ebpf.MapSpec{Name: "cnet_services6", Type: ebpf.Hash, KeySize: entrySize6, ValueSize: entrySize6,
			MaxEntries: maxServices, Flags: unix.BPF_F_NO_PREALLOC}, "published IPv6 ports"},
		{&r.peers6, ebpf.MapSpec{Name: "cnet_peers6", Type: ebpf.LRUHash, KeySize: 8, ValueSize: 2 * entrySize6,
			MaxEntries: maxPeers}, "translated IPv6 sockets"},
	} {
		if *m.m, err = ebpf.NewMap(&m.spec); err != nil {
			return nil, fmt.Errorf("creating the BPF map of %s: %w", m.what, err)
		}
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
		{"cnet_connect6", ebpf.AttachCGroupInet6Connect, connect6Prog(cookie)},
		{"cnet_peername6", ebpf.AttachCgroupInet6GetPeername, getpeername6Prog()},
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
	for _, m := range []*ebpf.Map{r.services, r.peers, r.services6, r.peers6} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	r.links, r.progs = nil, nil
	r.services, r.peers, r.services6, r.peers6 = nil, nil, nil, nil
	return errors.Join(errs...)
}

// Add translates connections to each service's host address; the list may mix IPv4 and IPv6
// services. On error nothing was added: the elements this call wrote, in either map, are
// deleted again (a service already there that the call rewrote goes too).
func (r *Redirector) Add(svcs []Service) error {
	if len(svcs) == 0 {
		return nil
	}
	e, err := encode(svcs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err = update(r.services, e.keys4, e.values4)
	if err == nil {
		if err = update(r.services6, e.keys6, e.values6); err != nil {
			if err4 := deleteAll(r.services, e.keys4); err4 != nil {
				err = errors.Join(err, fmt.Errorf("undoing the IPv4 ports: %w", err4))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("adding %d published ports to the BPF maps of connect() translations (cnet daemon --no-connect-translation leaves them to NAT): %w", len(svcs), err)
	}
	return nil
}

// Remove stops translating the services' host addresses; the list may mix IPv4 and IPv6
// services. Missing ones are not an error.
func (r *Redirector) Remove(svcs []Service) error {
	e, err := encode(svcs)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := errors.Join(deleteAll(r.services, e.keys4), deleteAll(r.services6, e.keys6)); err != nil {
		return fmt.Errorf("removing published ports from the BPF maps: %w", err)
	}
	return nil
}

// Len is the number of services translated, of both families.
func (r *Redirector) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return count[[8]byte, [8]byte](r.services) + count[[entrySize6]byte, [entrySize6]byte](r.services6)
}

// update puts each key's value into m, all or nothing: on error it deletes the keys it wrote.
func update[K, V any](m *ebpf.Map, keys []K, values []V) error {
	if len(keys) == 0 {
		return nil
	}
	n, err := m.BatchUpdate(keys, values, nil)
	if err == nil {
		return nil
	}
	// n counts the elements written before the failure. When the kernel refuses the batch
	// outright it leaves n at len(keys): nothing was written, and deleting the keys finds them
	// missing, which is no error (unless they were there before this call).
	if derr := deleteAll(m, keys[:min(n, len(keys))]); derr != nil {
		err = errors.Join(err, fmt.Errorf("undoing: %w", derr))
	}
	return err
}

// deleteAll deletes keys from m; missing ones are not an error.
func deleteAll[K any](m *ebpf.Map, keys []K) error {
	// A batch stops at the first key missing; n is how many went before it.
	for len(keys) > 0 {
		n, err := m.BatchDelete(keys, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		keys = keys[n+1:]
	}
	return nil
}

// count is the number of elements in m, whose keys are K and values V.
func count[K, V any](m *ebpf.Map) int {
	n := 0
	var k K
	var v V
	for it := m.Iterate(); it.Next(&k, &v); {
		n++
	}
	return n
}

// resolve points the instructions' map references at r's maps.
func (r *Redirector) resolve(insns asm.Instructions) (asm.Instructions, error) {
	for name, m := range map[string]*ebpf.Map{servicesMap: r.services, peersMap: r.peers,
		services6Map: r.services6, peers6Map: r.peers6} {
		if err := insns.AssociateMap(name, m); err != nil && !errors.Is(err, asm.ErrUnreferencedSymbol) {
			return nil, fmt.Errorf("linking BPF map %s: %w", name, err)
		}
	}
	return insns, nil
}

// entries are services as the maps hold them, a set for each family: keys (host address,
// port) and values (container address, port) as the programs read them, addresses and ports
// in network byte order, a port in the low 16 bits (in memory order) of 32 as user_port has it.
type entries struct {
	keys4, values4 [][8]byte
	keys6, values6 [][entrySize6]byte
}

// encode sorts the services by family and encodes them. It refuses a service whose host and
// container addresses are of different families (the programs cannot change a socket's
// family), and IPv4-mapped IPv6 addresses (publish those as IPv4).
func encode(svcs []Service) (entries, error) {
	var e entries
	for _, s := range svcs {
		host, ctr := s.Host.Addr(), s.Container.Addr()
		if !host.IsValid() {
			host = netip.IPv4Unspecified()
		}
		switch {
		case !ctr.IsValid() || ctr.IsUnspecified():
			return entries{}, fmt.Errorf("published port %s → %s: no container address", s.Host, s.Container)
		case host.Is4In6() || ctr.Is4In6():
			return entries{}, fmt.Errorf("published port %s → %s: an IPv4-mapped address is translated as IPv4: give it as one", s.Host, s.Container)
		case host.Is4() != ctr.Is4():
			return entries{}, fmt.Errorf("published port %s → %s: the host and container addresses are of different families", s.Host, s.Container)
		case host.Is4():
			var k, v [8]byte
			put(k[:], host, s.Host.Port())
			put(v[:], ctr, s.Container.Port())
			e.keys4, e.values4 = append(e.keys4, k), append(e.values4, v)
		default:
			var k, v [entrySize6]byte
			put(k[:], host, s.Host.Port())
			put(v[:], ctr, s.Container.Port())
			e.keys6, e.values6 = append(e.keys6, k), append(e.values6, v)
		}
	}
	return e, nil
}

// put writes an address, then the port in network byte order, to b.
func put(b []byte, a netip.Addr, port uint16) {
	n := copy(b, a.AsSlice())
	binary.BigEndian.PutUint16(b[n:], port)
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
