package firewall

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Firewall programs cnet's two tables, `table ip cnet` and `table ip6 cnet`, in one network
// namespace. Its methods are safe for concurrent use; each change is one netlink transaction,
// which covers both tables.
type Firewall struct {
	mu      sync.Mutex
	conn    *nftables.Conn
	ns      int // our own duplicate of the namespace fd, or -1 for the caller's namespace
	layouts [nTables]*layout
}

// New opens a netlink connection to nftables in the network namespace nsFd refers to, or in
// the calling thread's namespace when nsFd is -1 (the daemon's case). The fd is duplicated, so
// the caller may close its own. New changes nothing in the kernel.
func New(nsFd int) (*Firewall, error) {
	f := &Firewall{ns: -1}
	for t, fam := range families {
		if t == tableIP6 && !kernelHasIPv6() {
			continue
		}
		f.layouts[t] = newLayout(fam)
	}
	opts := []nftables.ConnOption{nftables.AsLasting(), nftables.WithSockOptions(bigBuffers)}
	if nsFd >= 0 {
		dup, err := unix.FcntlInt(uintptr(nsFd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("duplicating the network namespace fd: %w", err)
		}
		f.ns = dup
		opts = append(opts, nftables.WithNetNSFd(dup))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		f.closeNS()
		return nil, fmt.Errorf("opening a netlink connection to nftables: %w", err)
	}
	f.conn = conn
	return f, nil
}

// Close releases the netlink connection. The rules stay in the kernel.
func (f *Firewall) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.conn.CloseLasting()
	f.closeNS()
	return err
}

func (f *Firewall) closeNS() {
	if f.ns >= 0 {
		unix.Close(f.ns)
		f.ns = -1
	}
}

// kernelHasIPv6 reports whether the kernel runs IPv6 (not booted with ipv6.disable=1, which
// no namespace can undo): without it there is no IPv6 to filter, and the ip6 table's NAT
// chains might be refused, which would take the ip table's creation down with them (both are
// made in one transaction). Such a host gets the ip table alone.
func kernelHasIPv6() bool {
	_, err := os.Stat("/proc/sys/net/ipv6")
	return err == nil
}

// bufSize is the socket buffer asked for: a transaction is one sendmsg, and the kernel refuses
// one larger than the send buffer (a 65,535-port range is about 4 MB of elements), and queues
// an acknowledgement per message before we read any.
const bufSize = 16 << 20

// bigBuffers is a nftables.SockOption. It is generic only so that this package need not import
// the netlink library the option's signature names: the type argument is inferred from
// WithSockOptions's parameter type.
func bigBuffers[C interface {
	SyscallConn() (syscall.RawConn, error)
}](c C) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}, {unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}} {
			// The FORCE variants pass net.core.[rw]mem_max and need CAP_NET_ADMIN, which the
			// daemon has; without it the plain option gets as much as the limit allows.
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], bufSize) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], bufSize)
			}
		}
		// Errors then carry only the failing message's header, not a copy of the message.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// EnsureBase makes cnet's two tables, their sets, maps, chains and rules exist as this version
// defines them, leaving existing elements alone, in one transaction. A chain whose rules differ
// (deleted by hand, or of another cnet version) is refilled; a table whose sets or chains
// differ is rebuilt, which drops its elements, so the daemon calls Sync (which calls
// EnsureBase) rather than this alone. Each table is checked on its own: a missing ip6 table
// (made by a cnet without IPv6) is created without touching the ip table's elements.
func (f *Firewall) EnsureBase() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensureBase()
}

func (f *Firewall) ensureBase() error {
	var did []string
	for _, l := range f.layouts {
		if l == nil {
			continue // no IPv6 in this kernel
		}
		what, err := f.queueBase(l)
		if err != nil {
			f.discard()
			return err
		}
		if what != "" {
			did = append(did, what)
		}
	}
	if len(did) == 0 {
		return nil
	}
	return f.flush(strings.Join(did, " and "))
}

// queueBase queues what makes l's table right and says what that is ("" for nothing). It
// reads the kernel before queueing, and the reads do not send the queue, so one call per
// table can share a transaction.
func (f *Firewall) queueBase(l *layout) (string, error) {
	exists, err := f.tableExists(l)
	if err != nil {
		return "", err
	}
	what := "creating nftables " + l.String()
	if exists {
		ok, err := f.layoutMatches(l)
		if err != nil {
			return "", err
		}
		if ok {
			return f.repairRules(l)
		}
		f.conn.DelTable(l.table)
		what = "rebuilding nftables " + l.String() + " (its layout is not this version's)"
	}
	f.conn.AddTable(l.table)
	for _, s := range l.sets {
		if err := f.conn.AddSet(s, nil); err != nil {
			return "", fmt.Errorf("creating nftables set %s of %s: %w", s.Name, l, err)
		}
	}
	for _, c := range l.chains {
		f.conn.AddChain(c)
		l.addRules(f.conn, c)
	}
	return what, nil
}

func (f *Firewall) tableExists(l *layout) (bool, error) {
	_, err := f.conn.ListTableOfFamily(TableName, l.fam.nft)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	default:
		return false, fmt.Errorf("looking up nftables %s: %w", l, err)
	}
}

// layoutMatches reports whether l's table has exactly our sets (same types and flags) and
// chains (same type, hook and priority).
func (f *Firewall) layoutMatches(l *layout) (bool, error) {
	sets, err := f.conn.GetSets(l.table)
	if err != nil {
		return false, fmt.Errorf("listing the sets of %s: %w", l, err)
	}
	if len(sets) != len(l.sets) {
		return false, nil
	}
	for _, got := range sets {
		want := l.byName[got.Name]
		if want == nil || got.IsMap != want.IsMap || got.Interval != want.Interval ||
			got.KeyType.Name != want.KeyType.Name || got.KeyType.Bytes != want.KeyType.Bytes ||
			(want.IsMap && got.DataType.Bytes != want.DataType.Bytes) {
			return false, nil
		}
	}
	chains, err := f.conn.ListChainsOfTableFamily(l.fam.nft)
	if err != nil {
		return false, fmt.Errorf("listing nftables chains of family %s: %w", l.fam.name, err)
	}
	n := 0
	for _, got := range chains {
		if got.Table.Name != TableName {
			continue
		}
		n++
		want := l.chain(got.Name)
		if want == nil || got.Type != want.Type || got.Hooknum == nil || got.Priority == nil ||
			*got.Hooknum != *want.Hooknum || *got.Priority != *want.Priority {
			return false, nil
		}
	}
	return n == len(l.chains), nil
}

// repairRules queues the refilling of every chain of l whose rules are not ours in our order,
// and says what it queued ("" for nothing).
func (f *Firewall) repairRules(l *layout) (string, error) {
	var dirty []string
	for _, c := range l.chains {
		rules, err := f.conn.GetRules(l.table, c)
		if err != nil {
			return "", fmt.Errorf("listing the rules of chain %s of %s: %w", c.Name, l, err)
		}
		got := make([]string, len(rules))
		for i, r := range rules {
			got[i] = ruleTagOf(r)
		}
		want := make([]string, len(l.rules[c.Name]))
		for i, r := range l.rules[c.Name] {
			want[i] = version + ": " + r.tag
		}
		if slices.Equal(got, want) {
			continue
		}
		dirty = append(dirty, c.Name)
		f.conn.FlushChain(c)
		l.addRules(f.conn, c)
	}
	if len(dirty) == 0 {
		return "", nil
	}
	return fmt.Sprintf("restoring the rules of chains %s of %s", strings.Join(dirty, ", "), l), nil
}

// Delete removes cnet's two tables and everything in them, in one transaction. A missing
// table is not an error.
func (f *Firewall) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var gone []string
	for _, l := range f.layouts {
		if l == nil {
			continue // no IPv6 in this kernel
		}
		exists, err := f.tableExists(l)
		if err != nil {
			f.discard()
			return err
		}
		if exists {
			f.conn.DelTable(l.table)
			gone = append(gone, l.String())
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return f.flush("deleting nftables " + strings.Join(gone, " and "))
}

// flush sends the queued messages as one transaction.
func (f *Firewall) flush(what string) error {
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
