package daemon

import (
	"log/slog"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/container"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// Network modes other than a network name. A container in container mode records its target
// as "container:<full ID>", so a later rename or a name reused by another container cannot
// redirect it.
const (
	modeHost          = "host"
	modeNone          = "none"
	modeContainerPref = "container:"
)

// errShared is Docker's answer to connecting a container that has no network of its own.
func errShared() error {
	return errdefs.Forbidden("container sharing network namespace with another container or host cannot be connected to any other network")
}

// sharedTarget returns the ID of the container whose network namespace r joins, if any.
func (r *containerRecord) sharedTarget() (string, bool) {
	return strings.CutPrefix(r.networkMode(), modeContainerPref)
}

// ownsSandbox reports whether the container has a network namespace of its own.
func (r *containerRecord) ownsSandbox() bool {
	_, shared := r.sharedTarget()
	return r.networkMode() != modeHost && !shared
}

// resolveMode maps --network to a network name, host, none or container:<ID> ("default" and
// "" are bridge).
func (d *Daemon) resolveMode(mode string) (string, error) {
	switch {
	case mode == "" || mode == "default":
		return "bridge", nil
	case strings.HasPrefix(mode, modeContainerPref):
		ref := strings.TrimPrefix(mode, modeContainerPref)
		target, err := d.lookup(ref)
		if err != nil {
			return "", err
		}
		if _, shared := target.rec.sharedTarget(); shared {
			return "", errdefs.Invalid("cannot join the network of container %s: it shares another container's network itself", ref)
		}
		return modeContainerPref + target.rec.ID, nil
	}
	n, err := d.ctrl.Network(mode)
	if err != nil {
		return "", err
	}
	switch n.Driver {
	case "host":
		return modeHost, nil
	case "null":
		return modeNone, nil
	}
	return n.Name, nil
}

// checkModeConflicts refuses what Docker refuses for containers without a network of their own.
func checkModeConflicts(rec *containerRecord, req api.ContainerCreateRequest) error {
	if _, shared := rec.sharedTarget(); !shared {
		return nil
	}
	if rec.Config.Hostname != "" {
		return errdefs.Invalid("conflicting options: hostname and the network mode")
	}
	if req.NetworkingConfig != nil && len(req.NetworkingConfig.EndpointsConfig) > 0 {
		return errdefs.Invalid("conflicting options: container type network can't be used with --ip, --network-alias or other network settings")
	}
	return nil
}

// prepareNetwork gives the container its network view for a start: a sandbox of its own (the
// controller builds it whole: namespace, endpoints, resolver, ports, files), the host's
// namespace, or another running container's sandbox. It fills spec's namespace path and
// returns an undo for a start that fails later.
func (d *Daemon) prepareNetwork(c *ctr, spec *container.Spec) (undo func(), err error) {
	id := c.rec.ID
	noop := func() {}
	if targetID, shared := c.rec.sharedTarget(); shared {
		return noop, d.joinShared(c, targetID, spec)
	}
	if c.rec.networkMode() == modeHost {
		return noop, controller.HostModeFiles(d.dir(id), c.rec.Config.Hostname)
	}
	cfg, err := d.sandboxConfig(c)
	if err != nil {
		return nil, err
	}
	if spec.NetNSPath, err = d.ctrl.StartSandbox(cfg); err != nil {
		return nil, err
	}
	return func() {
		if err := d.ctrl.StopSandbox(id); err != nil {
			slog.Error("rolling back the network of a container that failed to start", "container", id[:12], "err", err)
		}
	}, nil
}

// sandboxConfig is what the controller needs to know of c to build its sandbox: the networks
// in order (its --network first, so that it gives the default route), names, files, links,
// DNS options and published ports.
func (d *Daemon) sandboxConfig(c *ctr) (controller.SandboxConfig, error) {
	rec := &c.rec
	hc := rec.HostConfig
	cfg := controller.SandboxConfig{
		ContainerID: rec.ID, ContainerName: rec.Name, Hostname: rec.Config.Hostname, Domainname: rec.Config.Domainname,
		FilesDir: d.dir(rec.ID), ExtraHosts: d.extraHosts(c), Links: linkNames(rec.Links),
		DNS: controller.ResolvOptions{Nameservers: hc.DNS, Search: hc.DNSSearch, Options: hc.DNSOptions},
	}
	if mode := rec.networkMode(); mode != modeNone {
		names := make([]string, 0, len(rec.Networks))
		for name := range rec.Networks {
			if name != mode {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		for _, name := range append([]string{mode}, names...) {
			if s := rec.Networks[name]; s != nil {
				cfg.Networks = append(cfg.Networks, controller.Attachment{Network: name, Options: joinOptions(rec.Name, s)})
			}
		}
	}
	ports, err := requestedPorts(hc, rec.Config.ExposedPorts)
	if err != nil {
		return cfg, err
	}
	cfg.Ports = ports
	return cfg, nil
}

// joinShared points spec at the target container's namespace and files, as Docker shares the
// target's /etc/hosts, resolv.conf and hostname with the containers that join it.
func (d *Daemon) joinShared(c *ctr, targetID string, spec *container.Spec) error {
	target, err := d.lookup(targetID)
	if err != nil {
		return errdefs.Conflict("cannot join network of container %s: it no longer exists", targetID[:12])
	}
	tv := target.view()
	running, name, hostname, domain := tv.Running, tv.Name, tv.Hostname, tv.Domainname
	if !running {
		return errdefs.Conflict("cannot join network of a non running container: %s", name)
	}
	tdir := d.dir(targetID)
	spec.NetNSPath = d.ctrl.SandboxPath(targetID)
	spec.HostsPath = filepath.Join(tdir, "hosts")
	spec.ResolvConfPath = filepath.Join(tdir, "resolv.conf")
	spec.HostnamePath = filepath.Join(tdir, "hostname")
	spec.Hostname, spec.Domainname = hostname, domain
	c.rec.Config.Hostname, c.rec.Config.Domainname = hostname, domain
	if !d.ctrl.SandboxExists(targetID) {
		return errdefs.Conflict("cannot join network of container %s: its network namespace is gone", name)
	}
	return nil
}
