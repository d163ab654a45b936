package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"

	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/portmap"
	"github.com/cnet-dev/cnet/internal/sandbox"
	"github.com/cnet-dev/cnet/internal/store"
)

// HostEntry is one "IP names..." line of a sandbox's /etc/hosts.
type HostEntry = sandbox.HostEntry

// ResolvOptions are a container's --dns, --dns-search and --dns-option.
type ResolvOptions = sandbox.ResolvOptions

// SandboxConfig is what the controller needs to build and keep a container's sandbox. The
// daemon owns the container and its lifecycle; the controller owns everything networking:
// the namespace, the endpoints, the resolver, the published ports and the files.
type SandboxConfig struct {
	ContainerID, ContainerName string
	Hostname, Domainname       string
	// Networks to join at the start, in order: the first gives the default route.
	Networks []Attachment
	// FilesDir is where the sandbox's hosts, resolv.conf and hostname are written; empty for
	// an adopted namespace, whose runtime writes its own.
	FilesDir string
	// NetNS, when set, is another runtime's network namespace that the sandbox adopts
	// instead of making one (a CNI attachment; see sandbox.Adopt).
	NetNS string
	// ExtraHosts are /etc/hosts lines before the container's own: --add-host, then legacy
	// links' lines.
	ExtraHosts []HostEntry
	// Links maps link aliases to the names they stand for, for the resolver.
	Links map[string]string
	DNS   ResolvOptions
	// Ports are published on the sandbox's gateway network (see ParsePorts).
	Ports []PortMapping
	// HandOff: the sandbox is another engine's, which moves the interfaces into its own
	// namespace itself (dockerd; see handoff.go). cnet makes no namespace, runs no resolver
	// and writes no files for it; each endpoint's IfName is its name in the host's namespace
	// until the engine takes it.
	HandOff bool
}

// Attachment is one network a sandbox joins and how.
type Attachment struct {
	Network string
	Options JoinOptions
}

// sbox is a running sandbox's state beyond its endpoints. mu serialises operations on one
// sandbox; it is taken before Controller.mu, never while holding it.
type sbox struct {
	mu        sync.Mutex
	id        string
	cfg       SandboxConfig
	dns       *sandboxDNS
	published *Published
	proxies   []*portmap.Proxy
}

// sandboxRecord is what is persisted of a sandbox: what it publishes, so that a restarted
// daemon holds the same ports again.
type sandboxRecord struct {
	ContainerID string
	Published   *Published `json:",omitempty"`
}

func (c *Controller) saveSandbox(sb *sbox) error {
	return c.store.Put(store.Sandboxes, sb.id, sandboxRecord{ContainerID: sb.id, Published: sb.published})
}

// sandbox returns the running sandbox of a container, or nil.
func (c *Controller) sandbox(containerID string) *sbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sboxes[containerID]
}

// StartSandbox builds a container's sandbox: the namespace, the endpoints in order, the
// embedded resolver (on networks where names resolve), the published ports, then the files.
// It returns the namespace's path. Any failure undoes every step before it, last first.
func (c *Controller) StartSandbox(cfg SandboxConfig) (path string, err error) {
	sb := &sbox{id: cfg.ContainerID, cfg: cfg}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	c.mu.Lock()
	if c.sboxes[sb.id] != nil {
		c.mu.Unlock()
		return "", errdefs.Conflict("container %s already has a running sandbox", cfg.ContainerName)
	}
	c.sboxes[sb.id] = sb
	c.mu.Unlock()
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			c.mu.Lock()
			delete(c.sboxes, sb.id)
			c.mu.Unlock()
		}
	}()
	if !cfg.HandOff {
		if path, err = c.CreateSandbox(sb.id, cfg.NetNS); err != nil {
			return "", err
		}
	}
	undo = append(undo, func() {
		if derr := c.DeleteSandbox(sb.id); derr != nil {
			slog.Error("rolling back the sandbox of a container that failed to start", "container", sb.id[:12], "err", derr)
		}
	})
	for _, a := range cfg.Networks {
		opts := a.Options
		opts.Hostname = cfg.Hostname
		opts.HandOff = cfg.HandOff
		if _, err = c.Join(sb.id, a.Network, opts); err != nil {
			return "", fmt.Errorf("connecting to network %s: %w", a.Network, err)
		}
	}
	if c.wantsResolver(sb) {
		if err = c.startResolver(sb); err != nil {
			return "", err
		}
		undo = append(undo, func() { c.stopResolver(sb); c.forgetRecords(sb) })
	}
	if err = c.publishPorts(sb); err != nil {
		return "", err
	}
	undo = append(undo, func() { c.unpublishPorts(sb); c.deleteSandboxRecord(sb) })
	if err = c.writeFiles(sb); err != nil {
		return "", err
	}
	return path, nil
}

// StopSandbox takes a container's sandbox down: its ports, its names and resolver, its
// endpoints and namespace. Stopping a sandbox that is not running is not an error.
func (c *Controller) StopSandbox(containerID string) error {
	sb := c.sandbox(containerID)
	if sb == nil {
		// No running sandbox in memory (a start that never finished, a daemon restarted):
		// whatever endpoints and namespace are left still go.
		return c.DeleteSandbox(containerID)
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	c.unpublishPorts(sb)
	c.stopResolver(sb)
	c.forgetRecords(sb)
	err := c.DeleteSandbox(containerID)
	c.deleteSandboxRecord(sb)
	c.mu.Lock()
	delete(c.sboxes, containerID)
	c.mu.Unlock()
	return err
}

func (c *Controller) deleteSandboxRecord(sb *sbox) {
	if err := c.store.Delete(store.Sandboxes, sb.id); err != nil {
		slog.Error("removing a sandbox's record", "container", sb.id[:12], "err", err)
	}
}

// Connect joins a running container's sandbox to one more network, then brings its names
// and files up to date (the first network where names resolve starts its resolver).
func (c *Controller) Connect(containerID, network string, opts JoinOptions) error {
	sb := c.sandbox(containerID)
	if sb == nil {
		return errdefs.Conflict("container %s is not running", opts.ContainerName)
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	opts.Hostname = sb.cfg.Hostname
	if _, err := c.Join(containerID, network, opts); err != nil {
		return err
	}
	sb.cfg.Networks = append(sb.cfg.Networks, Attachment{Network: network, Options: opts})
	if err := c.writeHosts(sb); err != nil {
		return err
	}
	if sb.dns == nil && c.wantsResolver(sb) {
		if err := c.startResolver(sb); err != nil {
			return err
		}
		return c.writeFiles(sb)
	}
	c.publishRecords(sb)
	return nil
}

// Disconnect takes a running container's sandbox off a network: its name goes first, so
// nobody is answered an address about to vanish, then the endpoint, then the hosts line.
// force ignores an endpoint that is already gone.
func (c *Controller) Disconnect(containerID, network string, force bool) error {
	sb := c.sandbox(containerID)
	if sb == nil {
		return errdefs.Conflict("container %s is not running", containerID[:12])
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	n, err := c.Network(network)
	if err != nil {
		return err
	}
	for _, ep := range c.SandboxEndpoints(containerID) {
		if ep.NetworkID == n.ID {
			c.dnsTable.Remove(n.Name, ep.ID)
		}
	}
	if err := c.Leave(containerID, n.ID); err != nil && !(force && errdefs.Is(err, errdefs.KindNotFound)) {
		c.publishRecords(sb)
		return err
	}
	for i, a := range sb.cfg.Networks {
		if a.Network == n.Name || a.Network == n.ID {
			sb.cfg.Networks = append(sb.cfg.Networks[:i:i], sb.cfg.Networks[i+1:]...)
			break
		}
	}
	if err := c.writeHosts(sb); err != nil {
		return err
	}
	c.publishRecords(sb)
	return nil
}

// SetLinks replaces a running sandbox's link names (network connect --link).
func (c *Controller) SetLinks(containerID string, links map[string]string) {
	sb := c.sandbox(containerID)
	if sb == nil {
		return
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.cfg.Links = links
	if sb.dns != nil {
		sb.dns.resolver.SetLinks(links)
	}
}

// SetExtraHosts replaces a running sandbox's extra /etc/hosts lines and rewrites the file
// (a legacy link's target restarted with another address).
func (c *Controller) SetExtraHosts(containerID string, extra []HostEntry) error {
	sb := c.sandbox(containerID)
	if sb == nil {
		return nil
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.cfg.ExtraHosts = extra
	return c.writeHosts(sb)
}

// SandboxExists reports whether a container's namespace is there (for containers joining it).
func (c *Controller) SandboxExists(containerID string) bool {
	return c.ns.Exists(c.SandboxPath(containerID))
}

// SandboxIs reports whether the sandbox of containerID is the network namespace at path: an
// adopted namespace whose runtime still names it (a runtime that deleted its namespace while
// the daemon was away leaves only cnet's bind, which must not keep it alive).
func (c *Controller) SandboxIs(containerID, path string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(c.SandboxPath(containerID), &a) != nil || syscall.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// RestoreSandboxes picks the running sandboxes up again after a daemon start: live holds the
// configuration of every container still running with a sandbox of its own. Endpoints are
// reconciled with the kernel (Recover), published ports held again and the firewall synced,
// resolvers restarted; records of sandboxes not in live are dropped.
func (c *Controller) RestoreSandboxes(live map[string]SandboxConfig) error {
	ids := make(map[string]bool, len(live))
	for id := range live {
		ids[id] = true
	}
	var errs []error
	if err := c.Recover(ids); err != nil {
		errs = append(errs, fmt.Errorf("reconciling networking with the kernel: %w", err))
	}
	recorded := map[string]*Published{}
	err := store.Load(c.store, store.Sandboxes, func(id string, r *sandboxRecord) error {
		if !ids[id] {
			return c.store.Delete(store.Sandboxes, id)
		}
		recorded[id] = r.Published
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("loading sandbox records: %w", err))
	}
	var sbs []*sbox
	c.mu.Lock()
	for id, cfg := range live {
		sb := &sbox{id: id, cfg: cfg, published: recorded[id]}
		c.sboxes[id] = sb
		sbs = append(sbs, sb)
	}
	c.mu.Unlock()
	c.restorePorts(sbs)
	// Resolvers come back in parallel: each is a namespace switch, two sockets and an nftables
	// transaction, mostly kernel time that overlaps well.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, sb := range sbs {
		if !c.wantsResolver(sb) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			sb.mu.Lock()
			defer sb.mu.Unlock()
			if err := c.startResolver(sb); err != nil {
				slog.Error("restoring the embedded DNS server", "container", sb.id[:12], "err", err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RenameSandbox gives a sandbox's container a new name: its DNS records on this host's
// networks answer to it at once (as Docker renames a running container's service records).
// Records other hosts hold for an overlay endpoint keep the old name until it joins again.
func (c *Controller) RenameSandbox(containerID, name string) {
	sb := c.sandbox(containerID)
	if sb == nil {
		return
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.cfg.ContainerName = name
	c.publishRecords(sb)
}
