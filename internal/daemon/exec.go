package daemon

import (
	"context"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/container"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// execRecord is one `cnet exec`, kept in memory until its container is removed or the daemon
// restarts (an exec dies with the daemon that runs it).
type execRecord struct {
	id          string
	containerID string
	exec        *container.Exec
	started     bool
	req         api.ExecCreateRequest // as asked, for inspect
}

// ExecCreate implements api.Backend.
func (d *Daemon) ExecCreate(_ context.Context, ref string, req api.ExecCreateRequest) (string, error) {
	c, err := d.lookup(ref)
	if err != nil {
		return "", err
	}
	if len(req.Cmd) == 0 {
		return "", errdefs.Invalid("no command given to exec")
	}
	c.mu.Lock()
	running, id := c.rec.State.Running, c.rec.ID
	env := append(append(append([]string{}, c.rec.LinkEnv...), c.rec.Config.Env...), req.Env...)
	user := req.User
	if user == "" {
		user = c.rec.Config.User // as Docker: exec runs as the container's user unless told
	}
	c.mu.Unlock()
	if !running {
		return "", errdefs.Conflict("container %s is not running", ref)
	}
	pid := container.Pid(d.dir(id))
	if pid == 0 {
		return "", errdefs.Conflict("container %s has not started its process yet", ref)
	}
	e := &execRecord{id: controller.NewID(), containerID: id, req: req, exec: container.NewExec(pid, container.ExecSpec{
		Args: req.Cmd, Env: env, WorkingDir: req.WorkingDir, Tty: req.Tty, OpenStdin: req.AttachStdin, User: user,
		ConsoleSize: consoleSize(req.ConsoleSize),
	})}
	d.mu.Lock()
	d.execs[e.id] = e
	d.mu.Unlock()
	return e.id, nil
}

func (d *Daemon) execByID(id string) (*execRecord, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.execs[id]
	if !ok {
		return nil, errdefs.NotFound("No such exec instance: %s", id)
	}
	return e, nil
}

// ExecStart implements api.Backend.
func (d *Daemon) ExecStart(_ context.Context, id string) (api.Attachment, error) {
	e, err := d.execByID(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.started {
		return nil, errdefs.Conflict("exec %s has already been started", id)
	}
	e.started = true
	return e.exec, nil
}

// ExecInspect implements api.Backend.
func (d *Daemon) ExecInspect(_ context.Context, id string) (api.ExecInspect, error) {
	e, err := d.execByID(id)
	if err != nil {
		return api.ExecInspect{}, err
	}
	out := api.ExecInspect{ID: e.id, ContainerID: e.containerID, Running: e.exec.Running(), Pid: e.exec.Pid(),
		OpenStdin: e.req.AttachStdin, OpenStdout: e.req.AttachStdout, OpenStderr: e.req.AttachStderr,
		ProcessConfig: api.ProcessConfig{Tty: e.req.Tty, Entrypoint: e.req.Cmd[0], Arguments: e.req.Cmd[1:], User: e.req.User}}
	if code := e.exec.ExitCode(); code >= 0 && !out.Running {
		out.ExitCode = &code
	}
	return out, nil
}
