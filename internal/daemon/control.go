package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/container"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/errdefs"
)

// ContainerKill implements api.Backend: sends signal (a name, with or without SIG, or a
// number; "" is SIGKILL) to a running container's process, as `docker kill -s`.
func (d *Daemon) ContainerKill(_ context.Context, ref, signal string) error {
	sig, err := parseSignal(signal)
	if err != nil {
		return err
	}
	// The lock is held across the signal and its event, so that "kill" comes before the
	// "die" it causes (the exit is handled under the same lock).
	c, err := d.lockLive(ref)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	if !c.rec.State.Running {
		return errdefs.Conflict("Cannot kill container: %s: Container %s is not running", ref, c.rec.ID)
	}
	if err := container.Signal(d.dir(c.rec.ID), sig); err != nil {
		return fmt.Errorf("signalling container %s: %w", ref, err)
	}
	d.containerEvent(&c.rec, "kill", map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// parseSignal reads docker kill's -s: "KILL", "SIGKILL", "9"; "" is SIGKILL.
func parseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, errdefs.Invalid("invalid signal: %s", s)
		}
		return unix.Signal(n), nil
	}
	sig := unix.SignalNum("SIG" + strings.TrimPrefix(strings.ToUpper(s), "SIG"))
	if sig == 0 {
		return 0, errdefs.Invalid("invalid signal: %s", s)
	}
	return sig, nil
}

// ContainerRestart implements api.Backend: stop (SIGTERM, SIGKILL after the timeout) then
// start, as `docker restart`; a stopped container is just started.
func (d *Daemon) ContainerRestart(ctx context.Context, ref string, timeout *int) error {
	c, err := d.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.restarting = true
	id := c.rec.ID
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.restarting = false
		c.mu.Unlock()
	}()
	if err := d.stop(ctx, c, grace(timeout)); err != nil {
		return fmt.Errorf("cannot restart container %s: %w", ref, err)
	}
	if err := d.ContainerStart(ctx, id); err != nil {
		return err
	}
	c.mu.Lock()
	d.containerEvent(&c.rec, "restart", nil)
	c.mu.Unlock()
	return nil
}

// ContainerRename implements api.Backend. The name is checked and taken under the daemon's
// lock (where names are looked up) and the container's, so two renames cannot take one name;
// a running container's DNS records answer to the new name at once.
func (d *Daemon) ContainerRename(_ context.Context, ref, name string) error {
	name = strings.TrimPrefix(name, "/")
	if name == "" {
		return errdefs.Invalid("Neither old nor new names may be empty")
	}
	if err := controller.ValidateName("container", name); err != nil {
		return err
	}
	c, err := d.lockLive(ref)
	if err != nil {
		return err
	}
	defer c.mu.Unlock()
	old := c.rec.Name
	if old == name {
		return errdefs.Invalid("Renaming a container with the same name as its current name")
	}
	d.mu.Lock()
	for _, o := range d.containers {
		if o != c && o.rec.Name == name {
			d.mu.Unlock()
			return errdefs.Conflict("Error when allocating new name: Conflict. The container name \"/%s\" is already in use by container \"%s\". You have to remove (or rename) that container to be able to reuse that name.", name, o.rec.ID)
		}
	}
	c.rec.Name = name
	d.mu.Unlock()
	if err := d.saveLocked(c); err != nil {
		d.mu.Lock()
		c.rec.Name = old
		d.mu.Unlock()
		return fmt.Errorf("renaming container %s: %w", old, err)
	}
	c.show()
	if c.rec.State.Running {
		d.ctrl.RenameSandbox(c.rec.ID, name)
	}
	d.containerEvent(&c.rec, "rename", map[string]string{"oldName": "/" + old})
	return nil
}

// ContainersPrune implements api.Backend: removes stopped containers that the filters (until,
// label, label!) select, as `docker container prune`.
func (d *Daemon) ContainersPrune(ctx context.Context, f api.Filters) (api.ContainersPruneResponse, error) {
	out := api.ContainersPruneResponse{ContainersDeleted: []string{}}
	if err := f.Only("until", "label", "label!"); err != nil {
		return out, err
	}
	until, byTime, err := f.Until(time.Now())
	if err != nil {
		return out, err
	}
	list, err := d.ContainerList(ctx, true)
	if err != nil {
		return out, err
	}
	var errs []error
	for _, s := range list {
		if s.State == "running" || (byTime && !time.Unix(s.Created, 0).Before(until)) || !f.MatchLabels(s.Labels) {
			continue
		}
		c, err := d.lookup(s.ID)
		if err != nil {
			continue // removed meanwhile
		}
		c.mu.Lock()
		running := c.rec.State.Running
		c.mu.Unlock()
		if running {
			continue // started meanwhile
		}
		size := dirSize(filepath.Join(d.imageRoot(s.ID), "upper"))
		if err := d.remove(c); err != nil {
			// As Docker: the others are still pruned, and the failures reported.
			errs = append(errs, fmt.Errorf("removing container %s: %w", s.ID[:12], err))
			continue
		}
		out.ContainersDeleted = append(out.ContainersDeleted, s.ID)
		out.SpaceReclaimed += size
	}
	return out, errors.Join(errs...)
}

// ContainerResize implements api.Backend: the window size of a running -t container's terminal.
func (d *Daemon) ContainerResize(_ context.Context, ref string, rows, cols uint16) error {
	c, err := d.lookup(ref)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running, dir := c.rec.State.Running, d.dir(c.rec.ID)
	c.mu.Unlock()
	if !running {
		return errdefs.Conflict("Container %s is not running", ref)
	}
	return container.ResizeTTY(dir, rows, cols)
}

// ExecResize implements api.Backend.
func (d *Daemon) ExecResize(_ context.Context, id string, rows, cols uint16) error {
	e, err := d.execByID(id)
	if err != nil {
		return err
	}
	return e.exec.Resize(rows, cols)
}

// consoleSize is a request's ConsoleSize, zero when absent.
func consoleSize(s *[2]uint16) [2]uint16 {
	if s == nil {
		return [2]uint16{}
	}
	return *s
}
