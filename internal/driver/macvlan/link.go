package macvlan

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/driver"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/nldump"
	"github.com/cnet-dev/cnet/internal/sandbox"
)

// CreateNetwork implements driver.Driver: it creates the parent when it is cnet's to create
// (the internal bridge, a VLAN sub-interface) and otherwise only checks that it exists.
func (d *Driver) CreateNetwork(n driver.Network) (err error) {
	p := parentName(n)
	switch {
	case n.Options[OptParent] == "" || ownsVLAN(n):
		// PrepareNetwork found no such interface; one that appeared since is someone else's,
		// and neither taken over nor, on failure, deleted.
		if _, err := nldump.LinkByName(d.nl, p); err == nil {
			return errdefs.Conflict("cannot create macvlan network %s: an interface named %s already exists on the host", n.Name, p)
		}
		defer func() {
			if err != nil {
				_ = d.deleteLink(p, "")
			}
		}()
		return d.ensureParent(n)
	default:
		_, err := d.parent(n)
		return err
	}
}

// ensureParent creates the internal bridge or the VLAN sub-interface if it is missing and
// brings it up; a user's parent is only looked up. Create and Restore both need it.
func (d *Driver) ensureParent(n driver.Network) error {
	p := parentName(n)
	var want netlink.Link
	switch {
	case n.Options[OptParent] == "":
		want = internalLink(n)
	case ownsVLAN(n):
		base, err := nldump.LinkByName(d.nl, vlanBase(p))
		if err != nil {
			if isNotFound(err) {
				return errdefs.NotFound("cannot create VLAN sub-interface %s of macvlan network %s: interface %s not found on the host", p, n.Name, vlanBase(p))
			}
			return fmt.Errorf("looking up interface %s: %w", vlanBase(p), err)
		}
		v, err := vlanLink(p, base.Attrs().Index)
		if err != nil {
			return err
		}
		want = v
	default:
		_, err := d.parent(n)
		return err
	}
	link, err := nldump.LinkByName(d.nl, p)
	switch {
	case err == nil:
		if link.Type() != want.Type() {
			return errdefs.Conflict("interface %s exists on the host and is a %s, not the %s macvlan network %s needs", p, link.Type(), want.Type(), n.Name)
		}
	case !isNotFound(err):
		return fmt.Errorf("looking up %s: %w", p, err)
	default:
		if err := d.nl.LinkAdd(want); err != nil {
			if _, isVLAN := want.(*netlink.Vlan); isVLAN && errors.Is(err, unix.EOPNOTSUPP) {
				return errdefs.Invalid("cannot create VLAN sub-interface %s for macvlan network %s: this kernel has no 802.1q VLAN support (module 8021q); load it or use an existing interface as parent: %w", p, n.Name, err)
			}
			return fmt.Errorf("creating %s %s for macvlan network %s: %w", want.Type(), p, n.Name, err)
		}
		if link, err = nldump.LinkByName(d.nl, p); err != nil {
			return fmt.Errorf("looking up new interface %s: %w", p, err)
		}
	}
	if err := d.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", p, err)
	}
	return nil
}

// internalLink is the bridge that stands in for the parent of an internal network.
func internalLink(n driver.Network) *netlink.Bridge {
	la := netlink.NewLinkAttrs()
	la.Name = parentName(n)
	return &netlink.Bridge{LinkAttrs: la}
}

// vlanLink is the 802.1q sub-interface named name (IFACE.VLAN) on the interface with index
// parentIndex.
func vlanLink(name string, parentIndex int) (*netlink.Vlan, error) {
	_, vid, err := parseVLAN(name)
	if err != nil {
		return nil, err
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = parentIndex
	return &netlink.Vlan{LinkAttrs: la, VlanId: vid, VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}, nil
}

// vlanBase is the interface part of IFACE.VLAN (PrepareNetwork has validated the name).
func vlanBase(name string) string {
	base, _, _ := parseVLAN(name)
	return base
}

// parent returns n's parent interface, which must exist.
func (d *Driver) parent(n driver.Network) (netlink.Link, error) {
	p := parentName(n)
	link, err := nldump.LinkByName(d.nl, p)
	if err != nil {
		if isNotFound(err) {
			return nil, errdefs.NotFound("parent interface %s of macvlan network %s not found on the host", p, n.Name)
		}
		return nil, fmt.Errorf("looking up parent interface %s: %w", p, err)
	}
	return link, nil
}

// DeleteNetwork implements driver.Driver: it deletes the parent only if cnet created it; a
// parent the user named is never touched.
func (d *Driver) DeleteNetwork(n driver.Network) error {
	switch {
	case n.Options[OptParent] == "":
		return d.deleteLink(parentName(n), "bridge")
	case ownsVLAN(n):
		return d.deleteLink(parentName(n), "vlan")
	}
	return nil
}

// deleteLink deletes the interface name if it exists and, when kind is given, is of that
// kind (an interface of another kind under that name is not cnet's).
func (d *Driver) deleteLink(name, kind string) error {
	link, err := nldump.LinkByName(d.nl, name)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if kind != "" && link.Type() != kind {
		return nil
	}
	if err := d.nl.LinkDel(link); err != nil {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// Restore implements driver.Driver: the parent is recreated if it is cnet's and missing, and
// must otherwise exist. There are no strays to remove: endpoints' links are only ever created
// inside sandboxes (see the package doc).
func (d *Driver) Restore(n driver.Network, _ []driver.Endpoint) error {
	return d.ensureParent(n)
}

// endpointLink is the macvlan interface of ep, created directly inside the namespace ns.
func endpointLink(parentIndex int, ep driver.Endpoint, m netlink.MacvlanMode, ns netns.NsHandle) *netlink.Macvlan {
	la := netlink.NewLinkAttrs()
	la.Name = ep.IfName
	la.ParentIndex = parentIndex
	la.HardwareAddr = ep.MAC
	la.Namespace = netlink.NsFd(int(ns))
	return &netlink.Macvlan{LinkAttrs: la, Mode: m}
}

// Join implements driver.Driver: one request creates the macvlan inside the sandbox, named
// and with its MAC; then it is addressed and brought up there.
func (d *Driver) Join(n driver.Network, ep driver.Endpoint, ns netns.NsHandle) (err error) {
	parent, err := d.parent(n)
	if err != nil {
		return err
	}
	m, err := mode(n.Options)
	if err != nil {
		return err
	}
	// The handle comes first so that a link once created can always be removed again.
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink in the sandbox: %w", err)
	}
	defer h.Close()
	if err := d.nl.LinkAdd(endpointLink(parent.Attrs().Index, ep, m, ns)); err != nil {
		if m == netlink.MACVLAN_MODE_PASSTHRU && (errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EINVAL)) {
			return errdefs.Conflict("macvlan network %s is in passthru mode: its parent %s carries one container at a time (%w)", n.Name, parent.Attrs().Name, err)
		}
		return fmt.Errorf("creating macvlan interface %s on %s: %w", ep.IfName, parent.Attrs().Name, err)
	}
	link, err := nldump.LinkByName(h, ep.IfName)
	if err != nil {
		return fmt.Errorf("finding %s in the sandbox: %w", ep.IfName, err)
	}
	defer func() {
		if err != nil {
			_ = h.LinkDel(link)
		}
	}()
	if err := sandbox.AddAddrs(h, link, int(ns), ep.Address, ep.Address6); err != nil {
		return err
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing %s up: %w", ep.IfName, err)
	}
	return nil
}

// sandboxLink returns ep's macvlan in its sandbox, with a handle the caller closes; nil
// link (and nil error) if the sandbox or the interface is gone.
func sandboxLink(ep driver.Endpoint) (*netlink.Handle, netlink.Link, error) {
	if ep.SandboxPath == "" || !sandbox.Exists(ep.SandboxPath) {
		return nil, nil, nil // the namespace, and every link in it, is gone
	}
	h, err := sandbox.Handle(ep.SandboxPath)
	if err != nil {
		return nil, nil, err
	}
	link, err := nldump.LinkByName(h, ep.IfName)
	if err != nil {
		h.Close()
		if isNotFound(err) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("looking up %s in the sandbox: %w", ep.IfName, err)
	}
	if link.Type() != "macvlan" {
		h.Close()
		return nil, nil, nil // not this endpoint's
	}
	return h, link, nil
}

// Leave implements driver.Driver: the interface lives only in the sandbox, so it is found
// and deleted there.
func (*Driver) Leave(_ driver.Network, ep driver.Endpoint) error {
	h, link, err := sandboxLink(ep)
	if err != nil || link == nil {
		return err
	}
	defer h.Close()
	if err := h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting %s in the sandbox: %w", ep.IfName, err)
	}
	return nil
}

// EndpointPresent implements driver.Driver: ep's interface is in its sandbox with its MAC.
// (A deleted parent takes its macvlans with it, so a present one is on the right parent.)
func (*Driver) EndpointPresent(_ driver.Network, ep driver.Endpoint) bool {
	h, link, err := sandboxLink(ep)
	if err != nil || link == nil {
		return false
	}
	defer h.Close()
	return link.Attrs().HardwareAddr.String() == ep.MAC.String()
}
