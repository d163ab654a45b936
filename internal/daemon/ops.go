package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/container"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// ContainerAttach implements api.Backend.
func (d *Daemon) ContainerAttach(_ context.Context, ref string) (api.Attachment, error) {
	c, err := d.lookup(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	attachable := c.rec.Config.AttachStdout || c.rec.Config.AttachStderr
	if !attachable || c.rec.State.Running {
		// The shim takes one attacher, the one that the foreground run started it for.
		return nil, errdefs.Conflict("container %s is not waiting for an attach: cnet attaches only `run` without -d, before the start", c.rec.Name)
	}
	c.attachPending = true
	return &earlyAttachment{dir: d.dir(c.rec.ID), tty: c.rec.Config.Tty, started: c.started}, nil
}

// earlyAttachment is an attach made before the start, as `run` does so that no output is lost:
// it waits for the shim, which holds the process until this connection arrives.
type earlyAttachment struct {
	dir     string
	tty     bool
	started <-chan struct{}
}

// attachWait bounds how long an attach waits for its container's start.
const attachWait = time.Minute

func (a *earlyAttachment) Tty() bool { return a.tty }

func (a *earlyAttachment) Serve(conn net.Conn) error {
	select {
	case <-a.started:
	case <-time.After(attachWait):
		return fmt.Errorf("container was not started within %s of the attach", attachWait)
	}
	att, err := container.Attach(a.dir, a.tty)
	if err != nil {
		return err
	}
	return att.Serve(conn)
}

// ContainerWait implements api.Backend.
func (d *Daemon) ContainerWait(ctx context.Context, ref, condition string) (<-chan int, error) {
	c, err := d.lookup(ref)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	exited, running, code, removed := c.exited, c.rec.State.Running, c.rec.State.ExitCode, c.removed
	c.mu.Unlock()
	out := make(chan int, 1)
	switch condition {
	case "", "not-running":
		if !running {
			out <- code
			return out, nil
		}
	case "next-exit":
	case "removed":
		// Only the removal ends this wait: a --rm container that exits (or never starts) is
		// removed by the daemon, and `docker run --rm` returns once it is gone.
		exited = nil
	default:
		return nil, errdefs.Invalid("invalid wait condition %q: want not-running, next-exit or removed", condition)
	}
	go func() {
		select {
		case <-exited:
		case <-removed:
		case <-ctx.Done():
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		out <- c.rec.State.ExitCode
	}()
	return out, nil
}

// ContainerStop implements api.Backend: SIGTERM, then SIGKILL after the timeout (10 s default).
func (d *Daemon) ContainerStop(ctx context.Context, ref string, timeout *int) error {
	c, err := d.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	wasRunning := c.rec.State.Running
	c.mu.Unlock()
	if err := d.stop(ctx, c, grace(timeout)); err != nil {
		return err
	}
	if wasRunning {
		c.mu.Lock()
		d.containerEvent(&c.rec, "stop", nil)
		c.mu.Unlock()
	}
	return nil
}

// grace is stop's wait before SIGKILL: the seconds asked for, else Docker's 10; a negative
// one (-t -1) waits for as long as the process takes, as Docker's.
func grace(timeoutSeconds *int) time.Duration {
	if timeoutSeconds == nil {
		return 10 * time.Second
	}
	return time.Duration(*timeoutSeconds) * time.Second
}

func (d *Daemon) stop(ctx context.Context, c *ctr, grace time.Duration) error {
	c.mu.Lock()
	running, exited, dir := c.rec.State.Running, c.exited, d.dir(c.rec.ID)
	c.mu.Unlock()
	if !running {
		return nil
	}
	if grace < 0 {
		if err := container.Signal(dir, unix.SIGTERM); err == nil {
			select {
			case <-exited:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if grace > 0 {
		if err := container.Signal(dir, unix.SIGTERM); err == nil {
			select {
			case <-exited:
				return nil
			case <-time.After(grace):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if err := container.Signal(dir, unix.SIGKILL); err != nil {
		// The process may have ended between the check and the signal; the exit is still
		// on its way.
		select {
		case <-exited:
			return nil
		case <-time.After(5 * time.Second):
			return fmt.Errorf("killing container %s: %w", c.rec.Name, err)
		}
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ContainerRemove implements api.Backend.
func (d *Daemon) ContainerRemove(ctx context.Context, ref string, force bool) error {
	c, err := d.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := c.rec.State.Running
	c.mu.Unlock()
	if running {
		if !force {
			return errdefs.Conflict("You cannot remove a running container %s. Stop the container before attempting removal or force remove", c.rec.ID)
		}
		if err := d.stop(ctx, c, 0); err != nil {
			return err
		}
	}
	if err := d.remove(c); err != nil {
		return err
	}
	return nil
}

// ContainerLogs implements api.Backend. With follow and a running container, the log is read
// on past its end until the container exits (then to the end once more) or ctx ends.
func (d *Daemon) ContainerLogs(ctx context.Context, ref string, follow bool) (io.ReadCloser, bool, error) {
	c, err := d.lookup(ref)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	tty, dir, running, exited := c.rec.Config.Tty, d.dir(c.rec.ID), c.rec.State.Running, c.exited
	c.mu.Unlock()
	rc, err := container.OpenLog(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return io.NopCloser(strings.NewReader("")), tty, nil
		}
		return nil, false, err
	}
	if follow && running {
		return &followReader{ReadCloser: rc, ctx: ctx, exited: exited}, tty, nil
	}
	return rc, tty, nil
}

// followPoll is how often a follower looks for new output at the log's end: the log is a
// plain file the container's shim appends to, so there is nothing to wait on but time.
const followPoll = 100 * time.Millisecond

// followReader reads a log on past its end while the container runs (docker logs -f).
type followReader struct {
	io.ReadCloser
	ctx    context.Context
	exited <-chan struct{}
	done   bool
}

func (f *followReader) Read(p []byte) (int, error) {
	for {
		n, err := f.ReadCloser.Read(p)
		if n > 0 || err != io.EOF || f.done {
			return n, err
		}
		select {
		case <-f.exited:
			f.done = true // read what the exit left, then end
		case <-f.ctx.Done():
			return 0, io.EOF
		case <-time.After(followPoll):
		}
	}
}

// ContainerList implements api.Backend.
func (d *Daemon) ContainerList(_ context.Context, all bool) ([]api.ContainerSummary, error) {
	d.mu.Lock()
	cs := make([]*ctr, 0, len(d.containers))
	for _, c := range d.containers {
		cs = append(cs, c)
	}
	d.mu.Unlock()
	out := []api.ContainerSummary{}
	for _, c := range cs {
		c.mu.Lock()
		rec := c.rec
		c.mu.Unlock()
		if !all && !rec.State.Running {
			continue
		}
		s := api.ContainerSummary{
			ID: rec.ID, Names: []string{"/" + rec.Name}, Image: imageName(rec), ImageID: rec.ImageID, Command: strings.Join(rec.Config.Cmd, " "),
			Created: rec.Created.Unix(), Ports: d.portsList(rec), Labels: nonNil(rec.Config.Labels), State: rec.State.Status,
			Status: statusLine(rec), NetworkSettings: &api.SummaryNetworkSettings{Networks: d.endpointSettings(rec)},
		}
		s.HostConfig.NetworkMode = rec.networkMode()
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created > out[j].Created })
	return out, nil
}

// statusLine is Docker's STATUS column.
func statusLine(rec containerRecord) string {
	switch rec.State.Status {
	case "running":
		return "Up " + api.HumanDuration(time.Since(rec.State.StartedAt))
	case "exited":
		return fmt.Sprintf("Exited (%d) %s ago", rec.State.ExitCode, api.HumanDuration(time.Since(rec.State.FinishedAt)))
	}
	return "Created"
}

// endpointSettings shows each network of the container; addresses only while it runs.
func (d *Daemon) endpointSettings(rec containerRecord) map[string]*api.EndpointSettings {
	out := map[string]*api.EndpointSettings{}
	if _, shared := rec.sharedTarget(); shared {
		// Docker shows no networks for a container that uses another's.
		return out
	}
	if rec.networkMode() == modeHost || rec.networkMode() == modeNone {
		n, err := d.ctrl.Network(rec.networkMode())
		if err == nil {
			out[n.Name] = &api.EndpointSettings{NetworkID: n.ID}
		}
		return out
	}
	for name, s := range rec.Networks {
		es := &api.EndpointSettings{IPAMConfig: s.IPAMConfig, Aliases: s.Aliases, Links: s.Links, DriverOpts: s.DriverOpts}
		if n, err := d.ctrl.Network(name); err == nil {
			es.NetworkID = n.ID
		}
		out[name] = es
	}
	if !rec.State.Running {
		return out
	}
	for _, ep := range d.ctrl.SandboxEndpoints(rec.ID) {
		n, err := d.ctrl.Network(ep.NetworkID)
		if err != nil {
			continue
		}
		es := out[n.Name]
		if es == nil {
			es = &api.EndpointSettings{}
			out[n.Name] = es
		}
		es.NetworkID, es.EndpointID, es.MacAddress = n.ID, ep.ID, ep.MAC
		if ep.Address.IsValid() {
			es.IPAddress, es.IPPrefixLen = ep.Address.Addr().String(), ep.Address.Bits()
		}
		if ep.Address6.IsValid() {
			es.GlobalIPv6Address, es.GlobalIPv6PrefixLen = ep.Address6.Addr().String(), ep.Address6.Bits()
		}
		es.Gateway, es.IPv6Gateway = addrString(ep.Gateway), addrString(ep.Gateway6)
		if n.Name != "bridge" && !slices.Contains(es.Aliases, rec.ID[:12]) {
			// Docker lists the short ID among a user network's aliases (once: Compose sends
			// it among the aliases it asks for).
			es.Aliases = append(append([]string{}, es.Aliases...), rec.ID[:12])
		}
	}
	return out
}

// ContainerInspect implements api.Backend.
func (d *Daemon) ContainerInspect(_ context.Context, ref string) (api.ContainerJSON, error) {
	c, err := d.lookup(ref)
	if err != nil {
		return api.ContainerJSON{}, err
	}
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	dir := d.dir(rec.ID)
	st := &api.ContainerState{
		Status: rec.State.Status, Running: rec.State.Running, ExitCode: rec.State.ExitCode, Error: rec.State.Error,
		StartedAt: dockerTime(rec.State.StartedAt), FinishedAt: dockerTime(rec.State.FinishedAt),
	}
	if rec.State.Running {
		st.Pid = container.Pid(dir)
	}
	cfg := rec.Config
	hc := rec.HostConfig
	out := api.ContainerJSON{
		ID: rec.ID, Created: rec.Created, Path: rec.Config.Cmd[0], Args: rec.Config.Cmd[1:], State: st,
		Image: imageRef(rec), Name: "/" + rec.Name, Driver: "cnet", Platform: "linux",
		ResolvConfPath: filepath.Join(dir, "resolv.conf"), HostnamePath: filepath.Join(dir, "hostname"),
		HostsPath: filepath.Join(dir, "hosts"), LogPath: filepath.Join(dir, "log"),
		HostConfig: &hc, Config: &cfg,
		NetworkSettings: &api.NetworkSettings{Ports: d.portsView(rec), Networks: d.endpointSettings(rec)},
	}
	if rec.State.Running && rec.ownsSandbox() {
		out.NetworkSettings.SandboxID = rec.ID
		out.NetworkSettings.SandboxKey = d.ctrl.SandboxPath(rec.ID)
	}
	if b := out.NetworkSettings.Networks["bridge"]; b != nil {
		ns := out.NetworkSettings
		ns.Bridge, ns.EndpointID, ns.Gateway, ns.IPAddress, ns.IPPrefixLen, ns.MacAddress =
			"", b.EndpointID, b.Gateway, b.IPAddress, b.IPPrefixLen, b.MacAddress
		ns.GlobalIPv6Address, ns.GlobalIPv6PrefixLen, ns.IPv6Gateway = b.GlobalIPv6Address, b.GlobalIPv6PrefixLen, b.IPv6Gateway
	}
	return out, nil
}

// dockerTime formats a time as Docker's inspect does, with the zero time as 0001-01-01.
func dockerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
