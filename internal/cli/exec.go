package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

type execOptions struct {
	interactive bool
	tty         bool
	env         []string
	workdir     string
	user        string
}

func newExecCommand() *cobra.Command {
	var o execOptions
	return o.command()
}

func (o *execOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	addList(f, &o.env, "env", "e", "Set environment variables")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: \"<name|uid>[:<group|gid>]\")")
	return cmd
}

func (o *execOptions) request(command []string) (api.ExecCreateRequest, error) {
	env, err := envList(o.env)
	if err != nil {
		return api.ExecCreateRequest{}, err
	}
	return api.ExecCreateRequest{
		AttachStdin:  o.interactive,
		AttachStdout: true,
		AttachStderr: true,
		Tty:          o.tty,
		Env:          env,
		Cmd:          command,
		WorkingDir:   o.workdir,
		User:         o.user,
	}, nil
}

func (o *execOptions) run(cmd *cobra.Command, container string, command []string) error {
	req, err := o.request(command)
	if err != nil {
		return err
	}
	if err := checkTTY(cmd.InOrStdin(), req.AttachStdin, req.Tty); err != nil {
		return err
	}
	if req.Tty {
		req.ConsoleSize = terminalSize(cmd.OutOrStdout())
	}
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	created, err := c.ExecCreate(ctx, container, req)
	if err != nil {
		return notFound(err, "container", container)
	}
	stream, err := c.ExecStart(ctx, created.ID, api.ExecStartRequest{Tty: req.Tty})
	if err != nil {
		return &ExitError{Code: startFailureCode(err), Message: describeError(err)}
	}
	defer stream.Close()
	resize := func(rows, cols uint16) error { return c.ExecResize(ctx, created.ID, rows, cols) }
	if err := connectStdio(cmd, stream, req.AttachStdin, req.Tty, resize); err != nil {
		return err
	}
	code, err := execExitCode(ctx, c, created.ID)
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// execExitCode asks for the exit code once the output ended. The daemon may close the stream a
// moment before it has reaped the process, so a missing code is asked for again, briefly.
func execExitCode(ctx context.Context, c *api.Client, execID string) (int, error) {
	const tries, pause = 100, 20 * time.Millisecond
	for range tries {
		ins, err := c.ExecInspect(ctx, execID)
		if err != nil {
			return 0, err
		}
		if ins.ExitCode != nil && !ins.Running {
			return *ins.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pause):
		}
	}
	return 0, fmt.Errorf("exec %s: the daemon reported no exit code %v after the output ended", shortID(execID), tries*pause)
}
