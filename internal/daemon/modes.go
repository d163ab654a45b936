package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/container"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/sandbox"
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

// prepareNetwork gives the container its network view for a start: a sandbox of its own with
// its endpoints and files, the host's namespace, or another running container's sandbox. It
// fills spec's namespace and file paths and returns an undo for a start that fails later.
func (d *Daemon) prepareNetwork(c *ctr, spec *container.Spec) (undo func(), err error) {
	id := c.rec.ID
	noop := func() {}
	if targetID, shared := c.rec.sharedTarget(); shared {
		return noop, d.joinShared(c, targetID, spec)
	}
	if c.rec.networkMode() == modeHost {
		return noop, d.writeHostModeFiles(c)
	}
	if spec.NetNSPath, err = d.ctrl.CreateSandbox(id); err != nil {
		return nil, err
	}
	undo = func() {
		if derr := d.ctrl.DeleteSandbox(id); derr != nil {
			slog.Error("rolling back the sandbox of a container that failed to start", "container", id[:12], "err", derr)
		}
	}
	if err := d.joinNetworks(c); err != nil {
		undo()
		return nil, err
	}
	if d.wantsResolver(c) {
		if err := d.startResolver(c); err != nil {
			undo()
			return nil, err
		}
		undoSandbox := undo
		undo = func() {
			d.stopResolver(c)
			d.forgetRecords(c)
			undoSandbox()
		}
	}
	undoPorts, err := d.publishPorts(c)
	if err != nil {
		undo()
		return nil, err
	}
	if err := d.writeFiles(c); err != nil {
		undoPorts()
		undo()
		return nil, err
	}
	undoNet := undo
	return func() { undoPorts(); undoNet() }, nil
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
	if !sandbox.Exists(spec.NetNSPath) {
		return errdefs.Conflict("cannot join network of container %s: its network namespace is gone", name)
	}
	return nil
}

// writeHostModeFiles gives a host-mode container the host's own view, as Docker does: the
// host's hosts and resolv.conf (loopback resolvers work there) and the host's name.
func (d *Daemon) writeHostModeFiles(c *ctr) error {
	dir := d.dir(c.rec.ID)
	for _, f := range []string{"hosts", "resolv.conf"} {
		data, err := os.ReadFile(filepath.Join("/etc", f))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("reading the host's /etc/%s: %w", f, err)
		}
		if err := sandbox.WriteFile(filepath.Join(dir, f), data); err != nil {
			return err
		}
	}
	return sandbox.WriteFile(filepath.Join(dir, "hostname"), []byte(c.rec.Config.Hostname+"\n"))
}
