package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

// containersCommand is a command that applies one daemon call to each container named, the
// shape stop, start and rm share.
func containersCommand(use, short string, op func(cmd *cobra.Command, c *api.Client, ctx context.Context, ref string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return forEachContainer(cmd, args, func(ctx context.Context, ref string) error {
				return op(cmd, c, ctx, ref)
			})
		},
	}
}

func newStopCommand() *cobra.Command {
	var seconds int
	cmd := containersCommand("stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers",
		func(cmd *cobra.Command, c *api.Client, ctx context.Context, ref string) error {
			// Without -t the daemon applies the container's own grace period.
			var timeout *int
			if cmd.Flags().Changed("time") {
				timeout = &seconds
			}
			return c.ContainerStop(ctx, ref, timeout)
		})
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "Seconds to wait for stop before killing it")
	return cmd
}

// newStartCommand starts stopped containers in the background (docker start without -a).
func newStartCommand() *cobra.Command {
	return containersCommand("start CONTAINER [CONTAINER...]", "Start one or more stopped containers",
		func(_ *cobra.Command, c *api.Client, ctx context.Context, ref string) error {
			return notFound(c.ContainerStart(ctx, ref), "container", ref)
		})
}

func newRmCommand() *cobra.Command {
	var force bool
	cmd := containersCommand("rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers",
		func(_ *cobra.Command, c *api.Client, ctx context.Context, ref string) error {
			return notFound(c.ContainerRemove(ctx, ref, force), "container", ref)
		})
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the removal of a running container")
	return cmd
}

// forEachContainer applies op to every container at once (stopping one may take its whole grace
// period) and reports in the order given, as docker does: each success's name as typed on
// stdout, then the failures, one per line, and exit code 1.
func forEachContainer(cmd *cobra.Command, refs []string, op func(ctx context.Context, ref string) error) error {
	results := make([]chan error, len(refs))
	for i, ref := range refs {
		results[i] = make(chan error, 1)
		go func() { results[i] <- op(cmd.Context(), ref) }()
	}
	var errs []string
	for i, ref := range refs {
		err := <-results[i]
		if err == nil {
			fmt.Fprintln(cmd.OutOrStdout(), ref)
			continue
		}
		if isConnectError(err) {
			return err
		}
		errs = append(errs, describeError(err))
	}
	return joinErrors(errs)
}
