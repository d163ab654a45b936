package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

const defaultPsTable = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

var containerHeader = headerContext{
	"ID":         "CONTAINER ID",
	"Image":      "IMAGE",
	"Command":    "COMMAND",
	"CreatedAt":  "CREATED AT",
	"RunningFor": "CREATED",
	"Ports":      "PORTS",
	"State":      "STATE",
	"Status":     "STATUS",
	"Names":      "NAMES",
	"Labels":     "LABELS",
	"Networks":   "NETWORKS",
}

type psOptions struct {
	all     bool
	quiet   bool
	noTrunc bool
	format  string
	filters []string
}

func newPsCommand() *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := parseFilterFlags(o.filters)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			list, err := c.ContainerList(cmd.Context(), o.all, filter)
			if err != nil {
				return err
			}
			return writeContainers(cmd.OutOrStdout(), o, list, time.Now())
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Don't truncate output")
	f.StringVar(&o.format, "format", "", "Pretty-print containers using a Go template")
	addList(f, &o.filters, "filter", "f", "Filter output based on conditions provided")
	return cmd
}

// writeContainers prints containers in the daemon's order (newest first); now is the moment
// the CREATED column counts from.
func writeContainers(out io.Writer, o psOptions, list []api.ContainerSummary, now time.Time) error {
	format := listFormat(o.format, o.quiet, defaultPsTable)
	rows := make([]any, len(list))
	for i, c := range list {
		rows[i] = containerRow{c: c, trunc: !o.noTrunc, now: now}
	}
	return writeRows(out, format, containerHeader, rows)
}

// containerRow is one container as --format templates see it; its methods are the placeholders.
type containerRow struct {
	c     api.ContainerSummary
	trunc bool
	now   time.Time
}

func (r containerRow) ID() string {
	if r.trunc {
		return shortID(r.c.ID)
	}
	return r.c.ID
}

func (r containerRow) Image() string { return r.c.Image }

// Command is quoted, and cut to 20 characters unless --no-trunc, as docker shows it.
func (r containerRow) Command() string {
	cmd := r.c.Command
	if r.trunc {
		cmd = ellipsis(cmd, 20)
	}
	return strconv.Quote(cmd)
}

func (r containerRow) CreatedAt() string { return time.Unix(r.c.Created, 0).String() }

func (r containerRow) RunningFor() string {
	return api.HumanDuration(r.now.Sub(time.Unix(r.c.Created, 0))) + " ago"
}

func (r containerRow) Ports() string  { return formatPorts(r.c.Ports) }
func (r containerRow) State() string  { return r.c.State }
func (r containerRow) Status() string { return r.c.Status }
func (r containerRow) Labels() string { return joinLabels(r.c.Labels) }

// Label is the value of one label, for {{.Label "key"}}.
func (r containerRow) Label(name string) string { return r.c.Labels[name] }

// Names drops the leading "/" of each name; truncated output keeps only the container's own
// name, not the names it is known by through links ("/other/alias").
func (r containerRow) Names() string {
	names := make([]string, 0, len(r.c.Names))
	for _, n := range r.c.Names {
		n = strings.TrimPrefix(n, "/")
		if r.trunc && !strings.Contains(n, "/") {
			return n
		}
		names = append(names, n)
	}
	return strings.Join(names, ",")
}

func (r containerRow) Networks() string {
	if r.c.NetworkSettings == nil {
		return ""
	}
	names := make([]string, 0, len(r.c.NetworkSettings.Networks))
	for n := range r.c.NetworkSettings.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func (r containerRow) MarshalJSON() ([]byte, error) { return rowJSON(r) }

// formatPorts renders published ports as docker's PORTS column ("0.0.0.0:8080->80/tcp"),
// folding consecutive ports into ranges so that a published range stays one entry.
func formatPorts(ports []api.Port) string {
	ps := append([]api.Port(nil), ports...)
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.IP != b.IP {
			return a.IP < b.IP
		}
		if a.PublicPort != b.PublicPort {
			return a.PublicPort < b.PublicPort
		}
		return a.PrivatePort < b.PrivatePort
	})
	var out []string
	for i := 0; i < len(ps); {
		j := i + 1
		for j < len(ps) && extendsRange(ps[j-1], ps[j]) {
			j++
		}
		first, last := ps[i], ps[j-1]
		priv := portRange(first.PrivatePort, last.PrivatePort)
		if first.PublicPort == 0 {
			out = append(out, fmt.Sprintf("%s/%s", priv, first.Type))
		} else {
			out = append(out, fmt.Sprintf("%s:%s->%s/%s", first.IP, portRange(first.PublicPort, last.PublicPort), priv, first.Type))
		}
		i = j
	}
	return strings.Join(out, ", ")
}

func extendsRange(prev, next api.Port) bool {
	if prev.Type != next.Type || prev.IP != next.IP || next.PrivatePort != prev.PrivatePort+1 {
		return false
	}
	if prev.PublicPort == 0 || next.PublicPort == 0 {
		return prev.PublicPort == next.PublicPort
	}
	return next.PublicPort == prev.PublicPort+1
}

func portRange(first, last uint16) string {
	if first == last {
		return strconv.Itoa(int(first))
	}
	return fmt.Sprintf("%d-%d", first, last)
}

func newInspectCommand() *cobra.Command {
	var format, kind string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on containers and networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kind != "" && kind != "container" && kind != "network" {
				return fmt.Errorf("%q is not a valid value for --type: use container or network", kind)
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var objs []inspected
			var errs []string
			for _, ref := range args {
				obj, err := inspectAny(cmd, c, kind, ref)
				if err != nil {
					if isConnectError(err) {
						return err
					}
					errs = append(errs, describeError(err))
					continue
				}
				objs = append(objs, obj)
			}
			if err := writeInspect(cmd.OutOrStdout(), format, objs); err != nil {
				return err
			}
			return joinErrors(errs)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output using the given Go template")
	cmd.Flags().StringVar(&kind, "type", "", "Return JSON for specified type (container or network)")
	return cmd
}

// inspectAny looks ref up as a container, then as a network, as docker's inspect does.
func inspectAny(cmd *cobra.Command, c *api.Client, kind, ref string) (inspected, error) {
	if kind == "" || kind == "container" {
		j, raw, err := c.ContainerInspectWithRaw(cmd.Context(), ref)
		if err == nil {
			return inspected{typed: j, raw: raw}, nil
		}
		if kind != "" {
			return inspected{}, notFound(err, "container", ref)
		}
		if !isNotFound(err) {
			return inspected{}, err
		}
	}
	n, raw, err := c.NetworkInspectWithRaw(cmd.Context(), ref)
	if err == nil {
		return inspected{typed: n, raw: raw}, nil
	}
	if kind != "" {
		return inspected{}, notFound(err, "network", ref)
	}
	return inspected{}, notFound(err, "object", ref)
}

func newLogsCommand() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			rc, raw, err := c.ContainerLogs(cmd.Context(), args[0], follow)
			if err != nil {
				return err
			}
			defer rc.Close()
			if raw {
				_, err = io.Copy(cmd.OutOrStdout(), rc)
				return err
			}
			return api.Demux(cmd.OutOrStdout(), cmd.ErrOrStderr(), rc)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Follow log output")
	return cmd
}
