// Package cli is cnet's docker-compatible command line: the same commands, flags, output and
// exit codes as docker's, so that scripts and habits written for Docker networking carry over.
package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

// hostEnv names the environment variable that replaces the default daemon address, as
// DOCKER_HOST does for docker.
const hostEnv = "CNET_HOST"

// ExitError ends the program with Code, printing Message (when not empty) to stderr first. run
// and exec use it to pass on the exit code of the process they ran.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string {
	if e.Message != "" {
		return e.Message
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// NewRootCommand builds the cnet command tree; extra commands (the daemon) are added beside the
// client commands.
func NewRootCommand(extra ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:           "cnet [OPTIONS] COMMAND",
		Short:         "Docker-style container networking",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noSubcommand,
		RunE:          showHelp,
		// Help and completion are cobra's; docker has no "completion" command to mirror.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.PersistentFlags().StringP("host", "H", "", "Daemon socket to connect to (default $"+hostEnv+" or "+api.DefaultHost+")")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newNetworkCommand(),
		newRunCommand(),
		newCreateCommand(),
		newExecCommand(),
		newPsCommand(),
		newInspectCommand(),
		newLogsCommand(),
		newStartCommand(),
		newPortCommand(),
		newStopCommand(),
		newKillCommand(),
		newRestartCommand(),
		newRenameCommand(),
		newContainerCommand(),
		newRmCommand(),
		newImageCommand(),
		newImagesCommand(),
		newLoadCommand(),
		newRmiCommand(),
		newTagCommand(),
		newSaveCommand(),
		newImportCommand(),
		newPullCommand(),
		newEventsCommand(),
		newVersionCommand(),
		newInfoCommand(),
	)
	root.AddCommand(extra...)
	disableFlagsInUseLine(root)
	return root
}

// Main runs cnet with the process's arguments and returns the exit code for os.Exit.
func Main(extra ...*cobra.Command) int {
	return Execute(NewRootCommand(extra...))
}

// Execute runs root and prints a failure the way docker does: daemon errors as "Error response
// from daemon: ...", everything else as is, on root's stderr. It returns the exit code.
func Execute(root *cobra.Command) int {
	err := root.Execute()
	if err == nil {
		return 0
	}
	stderr := root.ErrOrStderr()
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Message != "" {
			fmt.Fprintln(stderr, ee.Message)
		}
		if ee.Code == 0 {
			return 1
		}
		return ee.Code
	}
	fmt.Fprintln(stderr, describeError(err))
	return 1
}

// HostFor is the daemon address cmd was given: -H/--host, else $CNET_HOST, else the default.
func HostFor(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("host"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	if h := os.Getenv(hostEnv); h != "" {
		return h
	}
	return api.DefaultHost
}

func newClient(cmd *cobra.Command) (*api.Client, error) {
	return api.NewClient(HostFor(cmd))
}

// describeError renders an error as docker prints it. The client's StatusError carries only
// the daemon's message, so the prefix docker shows is added here.
func describeError(err error) string {
	var se *api.StatusError
	if errors.As(err, &se) {
		return "Error response from daemon: " + err.Error()
	}
	return err.Error()
}

// notFound turns the daemon's 404 for a named object into docker's "Error: No such <kind>:
// <ref>", which names what the user typed rather than what the daemon resolved.
func notFound(err error, kind, ref string) error {
	var se *api.StatusError
	if errors.As(err, &se) && se.Status == 404 {
		return errors.New("Error: No such " + kind + ": " + ref)
	}
	return err
}

func isNotFound(err error) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Status == 404
}

// flagError reports a flag mistake as docker does: with a pointer to --help and exit code 125,
// which scripts use to tell the CLI's own failures from the process's.
func flagError(cmd *cobra.Command, err error) error {
	return &ExitError{Code: 125, Message: fmt.Sprintf("%s\nSee '%s --help'.", err, cmd.CommandPath())}
}

// noSubcommand rejects unknown words after a command group, which cobra would otherwise accept
// silently and answer with help.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return fmt.Errorf("%s: '%s' is not a cnet command.\nSee '%s --help'", cmd.CommandPath(), args[0], cmd.CommandPath())
}

// showHelp answers a command group called without a subcommand.
func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires exactly %d %s", n, pluralArgs(n)))
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d %s", n, pluralArgs(n)))
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return argsError(cmd, "accepts no arguments")
}

func pluralArgs(n int) string {
	if n == 1 {
		return "argument"
	}
	return "arguments"
}

func argsError(cmd *cobra.Command, problem string) error {
	return fmt.Errorf("%q %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
		cmd.CommandPath(), problem, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}

// disableFlagsInUseLine keeps usage lines as written ("[OPTIONS]"), as docker shows them.
func disableFlagsInUseLine(cmd *cobra.Command) {
	cmd.DisableFlagsInUseLine = true
	for _, c := range cmd.Commands() {
		disableFlagsInUseLine(c)
	}
}

// joinErrors renders several per-object failures as docker does: one per line.
func joinErrors(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return &ExitError{Code: 1, Message: strings.Join(errs, "\n")}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d and at most %d arguments", lo, hi))
	}
}
