package cli

import (
	"context"
	"fmt"
	"io"

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

func newKillCommand() *cobra.Command {
	var signal string
	cmd := containersCommand("kill [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers",
		func(_ *cobra.Command, c *api.Client, ctx context.Context, ref string) error {
			return notFound(c.ContainerKill(ctx, ref, signal), "container", ref)
		})
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container (default KILL)")
	return cmd
}

func newRestartCommand() *cobra.Command {
	var seconds int
	cmd := containersCommand("restart [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers",
		func(cmd *cobra.Command, c *api.Client, ctx context.Context, ref string) error {
			var timeout *int
			if cmd.Flags().Changed("time") {
				timeout = &seconds
			}
			return notFound(c.ContainerRestart(ctx, ref, timeout), "container", ref)
		})
	cmd.Flags().IntVarP(&seconds, "time", "t", 10, "Seconds to wait for stop before killing the container")
	return cmd
}

func newRenameCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			if err := c.ContainerRename(cmd.Context(), args[0], args[1]); err != nil {
				return fmt.Errorf("%w\nError: failed to rename container named %s", err, args[0])
			}
			return nil
		},
	}
}

// newContainerCommand is `container`, for what has no top-level name (prune) and Docker's
// long forms of the others.
func newContainerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "container COMMAND", Short: "Manage containers", Args: noSubcommand, RunE: showHelp}
	cmd.AddCommand(newContainerPruneCommand(), newKillCommand(), newRestartCommand(), newRenameCommand(),
		newStopCommand(), newStartCommand(), newRmCommand())
	return cmd
}

func newContainerPruneCommand() *cobra.Command {
	var force bool
	var filters []string
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFilterFlags(filters)
			if err != nil {
				return err
			}
			if !force && !confirm(cmd, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ") {
				return nil
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			resp, err := c.ContainersPrune(cmd.Context(), f)
			if err != nil {
				return err
			}
			printPruned(cmd.OutOrStdout(), "Deleted Containers:", resp.ContainersDeleted, resp.SpaceReclaimed)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	addList(cmd.Flags(), &filters, "filter", "", `Provide filter values (e.g. "until=<timestamp>")`)
	return cmd
}

// printPruned is docker's report of a prune: a title and what went, if anything, then the
// space reclaimed.
func printPruned(out io.Writer, title string, lines []string, reclaimed int64) {
	if len(lines) > 0 {
		fmt.Fprintln(out, title)
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "Total reclaimed space: %s\n", humanSize(reclaimed))
}
