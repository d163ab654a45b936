package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/container"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
	"github.com/cnet-dev/cnet/internal/faults"
	"github.com/cnet-dev/cnet/internal/store"
)

// containerRecord is a container as persisted.
type containerRecord struct {
	ID         string
	Name       string
	Created    time.Time
	Config     api.ContainerConfig
	HostConfig api.HostConfig
	// Networks are the networks the container is (or will be, once started) connected to,
	// by name, with what was asked for each.
	Networks map[string]*api.EndpointSettings
	Links    []link
	// LinkEnv is the link environment computed at the last start, which execs inherit too.
	LinkEnv []string
	// ImageID is the image the container runs from (its config digest), "" for none.
	ImageID string `json:",omitempty"`
	State   struct {
		Status     string // created, running, exited
		Running    bool
		ExitCode   int
		Error      string
		StartedAt  time.Time
		FinishedAt time.Time
		Shim       container.Process
	}
}

// networkMode is the mode as Docker reports it: a network name, host, none.
func (r *containerRecord) networkMode() string { return r.HostConfig.NetworkMode }

// ctr is a container in memory. mu serialises operations on one container; exited is closed
// (and replaced) around each run so waiters can block on the next exit.
type ctr struct {
	mu      sync.Mutex
	rec     containerRecord
	exited  chan struct{}
	started chan struct{} // closed (and replaced at exit) when a run starts, for early attachers
	// removed is closed when the container is removed (wait condition "removed"); an
	// operation that found the container before then and locks it after sees gone().
	removed chan struct{}
	// restarting suppresses --rm's removal at the exit a restart causes, as Docker does.
	restarting bool
	// attachPending is set by an attach made before the start: only then does the shim hold
	// the process until the attacher arrives (a later `cnet start` must not wait for one).
	attachPending bool
	// shown is what other containers read of this one (see ctrView); replaced, never changed.
	shown atomic.Pointer[ctrView]
}

// ctrView is what operations on one container may read of another (a link target, a
// container:<name> target) without taking its lock. No operation holds one container's lock
// while taking another's: `network connect --link` can make links form a cycle, and two
// containers starting at once, each locked and each waiting for the other, would hang.
type ctrView struct {
	ID, Name             string
	Running              bool
	Hostname, Domainname string
	ExposedPorts         map[string]struct{}
	Env                  []string
	ImageID              string
}

func newCtr(rec containerRecord) *ctr {
	c := &ctr{rec: rec, exited: make(chan struct{}), started: make(chan struct{}), removed: make(chan struct{})}
	c.show()
	return c
}

// show publishes c's view after a change to what it holds; the caller holds c.mu (or is the
// only one to know c yet).
func (c *ctr) show() {
	c.shown.Store(&ctrView{
		ID: c.rec.ID, Name: c.rec.Name, Running: c.rec.State.Running,
		Hostname: c.rec.Config.Hostname, Domainname: c.rec.Config.Domainname,
		ExposedPorts: c.rec.Config.ExposedPorts, Env: c.rec.Config.Env, ImageID: c.rec.ImageID,
	})
}

// view is c's last published view: safe to call with any lock held.
func (c *ctr) view() *ctrView { return c.shown.Load() }

// gone reports that the container was removed; the caller holds c.mu.
func (c *ctr) gone() bool {
	select {
	case <-c.removed:
		return true
	default:
		return false
	}
}

// errGone is what an operation on a container removed meanwhile answers.
func errGone(c *ctr) error { return errdefs.NotFound("No such container: %s", c.rec.Name) }

// lockLive finds a container and returns it locked, unless it was removed between the two.
func (d *Daemon) lockLive(ref string) (*ctr, error) {
	c, err := d.lookup(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gone() {
		c.mu.Unlock()
		return nil, errGone(c)
	}
	return c, nil
}

func (d *Daemon) dir(id string) string { return filepath.Join(d.cfg.ExecRoot, "containers", id[:12]) }

// lookup finds a container by full ID, name (with or without "/"), or unique ID prefix.
func (d *Daemon) lookup(ref string) (*ctr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return nil, errdefs.Invalid("no container given")
	}
	if c, ok := d.containers[ref]; ok {
		return c, nil
	}
	for _, c := range d.containers {
		if c.rec.Name == ref {
			return c, nil
		}
	}
	var found []*ctr
	for id, c := range d.containers {
		if strings.HasPrefix(id, ref) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, errdefs.NotFound("No such container: %s", ref)
	case 1:
		return found[0], nil
	default:
		return nil, errdefs.Invalid("multiple containers match %q: give more of the ID", ref)
	}
}

// saveLocked persists c; the caller holds c.mu.
func (d *Daemon) saveLocked(c *ctr) error {
	return d.store.Put(store.Containers, c.rec.ID, &c.rec)
}

// ContainerCreate implements api.Backend.
func (d *Daemon) ContainerCreate(_ context.Context, name string, req api.ContainerCreateRequest) (api.ContainerCreateResponse, error) {
	imageID, err := d.applyImage(&req.ContainerConfig)
	if err != nil {
		return api.ContainerCreateResponse{}, err
	}
	if len(req.Cmd) == 0 {
		return api.ContainerCreateResponse{}, errdefs.Invalid("no command given: cnet runs a command from the host's filesystem, e.g. `cnet run busybox sh`")
	}
	if req.Rootfs != "" {
		if fi, err := os.Stat(req.Rootfs); err != nil || !fi.IsDir() {
			return api.ContainerCreateResponse{}, errdefs.Invalid("rootfs %s is not a directory", req.Rootfs)
		}
	}
	rec := containerRecord{Created: time.Now(), Config: req.ContainerConfig, Networks: map[string]*api.EndpointSettings{}, ImageID: imageID}
	if req.HostConfig != nil {
		rec.HostConfig = *req.HostConfig
	}
	mode, err := d.resolveMode(rec.HostConfig.NetworkMode)
	if err != nil {
		return api.ContainerCreateResponse{}, err
	}
	rec.HostConfig.NetworkMode = mode
	if err := checkModeConflicts(&rec, req); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	if req.NetworkingConfig != nil && len(req.NetworkingConfig.EndpointsConfig) > 1 {
		return api.ContainerCreateResponse{}, errdefs.Invalid("a container can be created on one network only; connect it to others with `cnet network connect`")
	}
	if _, shared := rec.sharedTarget(); !shared && mode != modeHost && mode != modeNone {
		var settings *api.EndpointSettings
		if req.NetworkingConfig != nil {
			for netRef, s := range req.NetworkingConfig.EndpointsConfig {
				if m, err := d.resolveMode(netRef); err != nil || m != mode {
					return api.ContainerCreateResponse{}, errdefs.Invalid("endpoint settings are for network %s but the container runs on %s", netRef, mode)
				}
				settings = s
			}
		}
		if settings == nil {
			settings = &api.EndpointSettings{}
		}
		n, _ := d.ctrl.Network(mode)
		if err := validateStatic(n, settings); err != nil {
			return api.ContainerCreateResponse{}, err
		}
		rec.Networks[mode] = settings
	}

	if err := validateDNS(rec.HostConfig); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	if _, err := parseExtraHosts(rec.HostConfig.ExtraHosts); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	if err := validateExposed(rec.Config.ExposedPorts); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	if _, err := requestedPorts(rec.HostConfig, rec.Config.ExposedPorts); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	warnings := []string{}
	if mode == modeHost && hasPorts(rec.HostConfig) {
		warnings = append(warnings, hostModePortsWarning)
		rec.HostConfig.PortBindings, rec.HostConfig.PublishAllPorts = nil, false
	}
	links, _, err := d.parseLinks("", rec.HostConfig.Links)
	if err != nil {
		return api.ContainerCreateResponse{}, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.assignIdentity(&rec, name); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	rec.Links = links
	rec.HostConfig.Links = nil
	for _, l := range links {
		rec.HostConfig.Links = append(rec.HostConfig.Links, fmt.Sprintf("/%s:/%s/%s", l.TargetName, rec.Name, l.Alias))
	}
	if rec.Config.Hostname == "" && mode == modeHost {
		// Docker gives host-mode containers the host's name.
		rec.Config.Hostname, _ = os.Hostname()
	}
	if rec.Config.Hostname == "" {
		rec.Config.Hostname = rec.ID[:12]
	}
	rec.State.Status = "created"
	c := newCtr(rec)
	if err := d.saveLocked(c); err != nil {
		return api.ContainerCreateResponse{}, err
	}
	d.containers[rec.ID] = c
	d.containerEvent(&c.rec, "create", nil)
	return api.ContainerCreateResponse{ID: rec.ID, Warnings: warnings}, nil
}

// assignIdentity gives rec a unique ID (unique in its first 12 characters too, which name its
// files) and a unique name; the caller holds d.mu.
func (d *Daemon) assignIdentity(rec *containerRecord, name string) error {
	for {
		rec.ID = controller.NewID()
		if !d.shortIDTaken(rec.ID[:12]) {
			break
		}
	}
	if name == "" {
		for name == "" || d.nameTaken(name) {
			name = randomName()
		}
	}
	name = strings.TrimPrefix(name, "/")
	if err := controller.ValidateName("container", name); err != nil {
		return err
	}
	if d.nameTaken(name) {
		for _, c := range d.containers {
			if c.rec.Name == name {
				return errdefs.Conflict("Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, c.rec.ID)
			}
		}
	}
	rec.Name = name
	return nil
}

func (d *Daemon) shortIDTaken(short string) bool {
	for id := range d.containers {
		if id[:12] == short {
			return true
		}
	}
	return false
}

func (d *Daemon) nameTaken(name string) bool {
	for _, c := range d.containers {
		if c.rec.Name == name {
			return true
		}
	}
	return false
}

// ContainerStart implements api.Backend: sandbox, endpoints, files, then the process. Any
// failure undoes the networking it had set up.
func (d *Daemon) ContainerStart(_ context.Context, ref string) error {
	c, err := d.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.gone() {
		c.mu.Unlock()
		return errGone(c)
	}
	if c.rec.State.Running {
		c.mu.Unlock()
		return nil
	}
	if err := d.startLocked(c); err != nil {
		c.rec.State.Error = err.Error()
		_ = d.saveLocked(c)
		autoRemove := c.rec.HostConfig.AutoRemove
		c.mu.Unlock()
		// --rm: a container that never ran is removed too, as dockerd does.
		if autoRemove {
			if rerr := d.remove(c); rerr != nil {
				slog.Error("auto-removing a container that failed to start", "container", c.rec.ID[:12], "err", rerr)
			}
		}
		return err
	}
	id := c.rec.ID
	if c.rec.ownsSandbox() {
		d.endpointEvents(&c.rec, "connect")
	}
	d.containerEvent(&c.rec, "start", nil)
	c.mu.Unlock()
	// Containers linking to this one see its new address; done without holding its lock,
	// since refreshing takes each linker's.
	d.refreshLinkers(id)
	return nil
}

func (d *Daemon) startLocked(c *ctr) (err error) {
	id := c.rec.ID
	dir := d.dir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating container directory: %w", err)
	}
	// A new run starts with a fresh exit record; the log goes on (the shim appends), so that
	// `logs` after a restart shows every run's output, as Docker's does.
	for _, f := range []string{"exit.json", "pid"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	spec := container.Spec{
		ID: id, Args: c.rec.Config.Cmd, Env: c.rec.Config.Env, WorkingDir: c.rec.Config.WorkingDir,
		Hostname: c.rec.Config.Hostname, Domainname: c.rec.Config.Domainname,
		Tty: c.rec.Config.Tty, OpenStdin: c.rec.Config.OpenStdin, Attach: c.attachPending, ConsoleSize: consoleSize(c.rec.HostConfig.ConsoleSize),
		HostsPath: filepath.Join(dir, "hosts"), ResolvConfPath: filepath.Join(dir, "resolv.conf"), HostnamePath: filepath.Join(dir, "hostname"),
		Rootfs: c.rec.Config.Rootfs, User: c.rec.Config.User,
	}
	if c.rec.ImageID != "" {
		root, err := d.mountImageRoot(c.rec.ID, c.rec.ImageID)
		if err != nil {
			return err
		}
		spec.Rootfs = root
	}
	if err := d.checkLinkTargets(c); err != nil {
		return err
	}
	c.attachPending = false
	undo, err := d.prepareNetwork(c, &spec)
	if err != nil {
		return err
	}
	c.rec.LinkEnv = d.linkEnvFor(c)
	spec.Env = append(append([]string{}, c.rec.LinkEnv...), spec.Env...)
	proc, err := container.Start(dir, spec)
	if err != nil {
		undo()
		return errdefs.Invalid("starting container process: %w", err)
	}
	faults.Point("container-started")
	c.rec.State.Status = "running"
	c.rec.State.Running = true
	c.rec.State.Error = ""
	c.rec.State.ExitCode = 0
	c.rec.State.StartedAt = time.Now()
	c.rec.State.FinishedAt = time.Time{}
	c.rec.State.Shim = proc
	c.show()
	if err := d.saveLocked(c); err != nil {
		slog.Error("recording a started container", "container", id[:12], "err", err)
	}
	close(c.started)
	go d.watch(c, proc)
	return nil
}

// watch waits for the container's shim to end and then tears its networking down.
func (d *Daemon) watch(c *ctr, proc container.Process) {
	<-container.Watch(proc)
	d.handleExit(c, proc)
}

func (d *Daemon) handleExit(c *ctr, proc container.Process) {
	c.mu.Lock()
	if !c.rec.State.Running || c.rec.State.Shim != proc {
		c.mu.Unlock()
		return
	}
	id := c.rec.ID
	st, ok := container.ReadExit(d.dir(id))
	if ok {
		c.rec.State.ExitCode = st.Code
		c.rec.State.FinishedAt = st.FinishedAt
		c.rec.State.Error = st.Error
	} else {
		// The shim was killed before it could record anything: report what SIGKILL gives.
		c.rec.State.ExitCode = 137
		c.rec.State.FinishedAt = time.Now()
	}
	c.rec.State.Status = "exited"
	c.rec.State.Running = false
	c.show()
	d.containerEvent(&c.rec, "die", exitAttrs(c.rec.State.ExitCode))
	if err := d.ctrl.StopSandbox(id); err != nil {
		slog.Error("tearing down the network of an exited container", "container", id[:12], "err", err)
	}
	if c.rec.ownsSandbox() {
		d.endpointEvents(&c.rec, "disconnect")
	}
	if err := d.saveLocked(c); err != nil {
		slog.Error("recording a container's exit", "container", id[:12], "err", err)
	}
	close(c.exited)
	c.exited = make(chan struct{})
	c.started = make(chan struct{})
	autoRemove := c.rec.HostConfig.AutoRemove && !c.restarting
	c.mu.Unlock()
	if autoRemove {
		if err := d.remove(c); err != nil {
			slog.Error("auto-removing a container", "container", id[:12], "err", err)
		}
	}
}

// remove deletes a stopped container's record and files.
func (d *Daemon) remove(c *ctr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone() {
		return nil // removed meanwhile (rm -f racing --rm)
	}
	if c.rec.State.Running {
		// Started again between its caller's check and here (a restart, a start).
		return errdefs.Conflict("You cannot remove a running container %s. Stop the container before attempting removal or force remove", c.rec.ID)
	}
	if err := d.store.Delete(store.Containers, c.rec.ID); err != nil {
		return err
	}
	d.mu.Lock()
	delete(d.containers, c.rec.ID)
	d.mu.Unlock()
	select {
	case <-c.removed:
	default:
		close(c.removed)
		d.containerEvent(&c.rec, "destroy", nil)
	}
	if err := os.RemoveAll(d.dir(c.rec.ID)); err != nil {
		return fmt.Errorf("removing the files of container %s: %w", c.rec.Name, err)
	}
	return d.removeImageRoot(c.rec.ID)
}

// restore loads the containers, finds which are still running, reconciles the networking with
// that and watches the live ones again.
func (d *Daemon) restore() error {
	err := store.Load(d.store, store.Containers, func(id string, rec *containerRecord) error {
		d.containers[id] = newCtr(*rec)
		return nil
	})
	if err != nil {
		return err
	}
	// A container recorded as not running has no process: one found is the leftover of a
	// start interrupted after its shim began (the record never said running). Roll it back:
	// its process, and a shim still waiting to start one for an attacher that will not come.
	var stopped []string
	for _, c := range d.containers {
		if !c.rec.State.Running {
			if err := container.Signal(d.dir(c.rec.ID), unix.SIGKILL); err == nil {
				slog.Info("killed the process of a container whose start was interrupted", "container", c.rec.ID[:12])
			}
			stopped = append(stopped, d.dir(c.rec.ID))
		}
	}
	for _, dir := range container.KillShims(stopped...) {
		slog.Info("killed the shim of a container whose start was interrupted", "dir", dir)
	}
	live := map[string]controller.SandboxConfig{}
	var dead []*ctr
	for id, c := range d.containers {
		if !c.rec.State.Running {
			continue
		}
		if !container.Alive(c.rec.State.Shim) {
			dead = append(dead, c)
			continue
		}
		if c.rec.ownsSandbox() {
			cfg, err := d.sandboxConfig(c)
			if err != nil {
				slog.Error("restoring the networking of a running container", "container", id[:12], "err", err)
			}
			live[id] = cfg
		}
	}
	d.liveCNISandboxes(live)
	d.liveDockerSandboxes(live)
	if err := d.ctrl.RestoreSandboxes(live); err != nil {
		slog.Error("restoring networking", "err", err)
	}
	for _, c := range dead {
		d.handleExit(c, c.rec.State.Shim)
	}
	for _, c := range d.containers {
		if c.rec.State.Running {
			close(c.started)
			go d.watch(c, c.rec.State.Shim)
		}
	}
	return nil
}
