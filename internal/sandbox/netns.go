// Package sandbox owns a container's network namespace and the files that describe its view of
// the network (/etc/hosts, /etc/resolv.conf, /etc/hostname).
//
// A namespace outlives the daemon because it is bind-mounted on a file under the exec root,
// as `ip netns add` does; the daemon reaches it through that file, never by entering it for
// longer than one locked-thread call.
package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/nldump"
)

// Create makes a new network namespace, bind-mounts it on path and brings its loopback up.
// On failure nothing is left behind.
func Create(path string) (err error) {
	if err := mountPoint(path); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = Delete(path)
		}
	}()

	// unshare and the bind mount must run on one thread that is then switched back; if switching
	// back fails the thread stays locked and the runtime discards it with the goroutine.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading the current network namespace: %w", err)
			return
		}
		defer origin.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("creating a network namespace: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		mountErr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if mountErr == nil {
			mountErr = disableIPv6ByDefault()
		}
		if err := netns.Set(origin); err != nil {
			errc <- fmt.Errorf("returning to the daemon's network namespace: %w", err)
			return // thread stays locked: the runtime will not reuse it
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind-mounting the namespace on %s: %w", path, mountErr)
		}
		errc <- mountErr
	}()
	if err := <-errc; err != nil {
		return err
	}

	return loUp(path)
}

// loUp brings the loopback of the namespace at path up (the embedded resolver listens on it).
func loUp(path string) error {
	h, err := Handle(path)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := nldump.LinkByName(h, "lo")
	if err != nil {
		return fmt.Errorf("finding lo in namespace %s: %w", path, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up in namespace %s: %w", path, err)
	}
	return nil
}

// Delete unmounts and removes the namespace file. A missing file is not an error, so that
// rollback and recovery can call it unconditionally. The namespace itself goes away once no
// process is left in it.
func Delete(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing namespace file %s: %w", path, err)
	}
	return nil
}

// Exists reports whether path is a mounted network namespace.
func Exists(path string) bool {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false
	}
	return fs.Type == unix.NSFS_MAGIC
}

// Open returns a handle (an fd) on the namespace at path; the caller closes it.
func Open(path string) (netns.NsHandle, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	return h, nil
}

// Handle returns a netlink handle bound to the namespace at path; the caller closes it.
func Handle(path string) (*netlink.Handle, error) {
	ns, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("opening netlink in namespace %s: %w", path, err)
	}
	return h, nil
}

// disableIPv6ByDefault keeps interfaces that later join the namespace (eth0, eth1, ...) from
// getting IPv6 link-local addresses, as Docker does for networks without IPv6; lo keeps ::1.
// It must run on a thread inside the namespace: /proc/sys/net belongs to the opener's.
func disableIPv6ByDefault() error {
	const knob = "/proc/sys/net/ipv6/conf/default/disable_ipv6"
	if err := os.WriteFile(knob, []byte("1\n"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("disabling IPv6 on the sandbox's future interfaces: %w", err)
	}
	return nil
}

// SetDefaultRoute points the default route of gw's family in the namespace at path through
// ifName at gw, replacing the one there is.
func SetDefaultRoute(path, ifName string, gw netip.Addr) error {
	h, err := Handle(path)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := nldump.LinkByName(h, ifName)
	if err != nil {
		return fmt.Errorf("finding %s in the sandbox: %w", ifName, err)
	}
	route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice(),
		Dst: &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}}
	if gw.Is6() {
		route.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	if err := h.RouteReplace(route); err != nil {
		return fmt.Errorf("setting the default route via %s: %w", gw, err)
	}
	return nil
}

// Adopt makes path a second name of an existing network namespace, src (another runtime's:
// a /run/netns file or /proc/PID/ns/net), by a bind mount: cnet then reaches it as its own
// sandboxes, and Delete removes only cnet's name for it, never the namespace, which belongs
// to the runtime. The bind keeps the namespace reachable even after the runtime's name for it
// is gone (containerd deletes with an empty CNI_NETNS once the task exited).
func Adopt(src, path string) (err error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(src, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a network namespace (%v)", src, err)
	}
	if err := mountPoint(path); err != nil {
		return err
	}
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("binding network namespace %s at %s: %w", src, path, err)
	}
	// Some runtimes leave lo down (containerd's ctr); names resolve at 127.0.0.11 on it.
	if err := loUp(path); err != nil {
		_ = Delete(path)
		return err
	}
	return nil
}

// mountPoint creates the empty file a namespace is bind-mounted on; one that exists is an
// error, so that two sandboxes never share a path.
func mountPoint(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating namespace directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return fmt.Errorf("creating namespace file %s: %w", path, err)
	}
	return f.Close()
}

// Addr is p as netlink adds it to an interface: an IPv6 address without duplicate address
// detection, which IPAM makes needless (it never hands an address out twice) and which would
// keep the address unusable for a second or more after the container starts.
func Addr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// EnableIPv6 turns IPv6 on for ifName inside the namespace nsFd: sandboxes are made with IPv6
// off for new interfaces (as Docker's containers on IPv4 networks have none), so an endpoint
// with an IPv6 address turns it on for its own interface only. The interface accepts no
// router advertisements: its address and default route are the network's, and another
// container on the network must not be able to add routes by sending RAs.
func EnableIPv6(nsFd int, ifName string) error {
	return Enter(nsFd, func() error {
		for _, knob := range []string{"accept_ra", "disable_ipv6"} {
			path := "/proc/sys/net/ipv6/conf/" + ifName + "/" + knob
			if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
				return fmt.Errorf("turning IPv6 on for %s in the sandbox (%s): %w", ifName, knob, err)
			}
		}
		return nil
	})
}

// AddAddrs puts the valid ones of addrs on link, which h reaches in the namespace nsFd,
// turning IPv6 on for the link first when one is IPv6.
func AddAddrs(h *netlink.Handle, link netlink.Link, nsFd int, addrs ...netip.Prefix) error {
	for _, p := range addrs {
		if p.IsValid() && p.Addr().Is6() {
			if err := EnableIPv6(nsFd, link.Attrs().Name); err != nil {
				return err
			}
			break
		}
	}
	for _, p := range addrs {
		if !p.IsValid() {
			continue
		}
		if err := h.AddrAdd(link, Addr(p)); err != nil {
			return fmt.Errorf("adding %s to %s: %w", p, link.Attrs().Name, err)
		}
	}
	return nil
}
