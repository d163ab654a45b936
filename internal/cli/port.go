package cli

import (
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// newPortCommand is `cnet port CONTAINER [PRIVATE_PORT[/PROTO]]`, docker's format:
// "80/tcp -> 0.0.0.0:5000", or just "0.0.0.0:5000" for one port.
func newPortCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			info, err := c.ContainerInspect(cmd.Context(), args[0])
			if err != nil {
				return notFound(err, "container", args[0])
			}
			out := cmd.OutOrStdout()
			if len(args) == 2 {
				key := args[1]
				if !strings.Contains(key, "/") {
					key += "/tcp"
				}
				bindings := info.NetworkSettings.Ports[key]
				if len(bindings) == 0 {
					return fmt.Errorf("no public port '%s' published for %s", key, args[0])
				}
				for _, b := range bindings {
					fmt.Fprintln(out, net.JoinHostPort(b.HostIP, b.HostPort))
				}
				return nil
			}
			keys := make([]string, 0, len(info.NetworkSettings.Ports))
			for k := range info.NetworkSettings.Ports {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				for _, b := range info.NetworkSettings.Ports[k] {
					fmt.Fprintf(out, "%s -> %s\n", k, net.JoinHostPort(b.HostIP, b.HostPort))
				}
			}
			return nil
		},
	}
}
