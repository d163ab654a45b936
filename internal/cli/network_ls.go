package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

const defaultNetworkTable = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"

var networkHeader = headerContext{
	"ID":        "NETWORK ID",
	"Name":      "NAME",
	"Driver":    "DRIVER",
	"Scope":     "SCOPE",
	"IPv6":      "IPV6",
	"Internal":  "INTERNAL",
	"Labels":    "LABELS",
	"CreatedAt": "CREATED AT",
}

type networkListOptions struct {
	quiet   bool
	noTrunc bool
	filters []string
	format  string
}

func newNetworkListCommand() *cobra.Command {
	var o networkListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			filter, err := parseFilterFlags(o.filters)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			nets, err := c.NetworkList(cmd.Context(), filter) // the daemon filters, as Docker's
			if err != nil {
				return err
			}
			return writeNetworks(cmd.OutOrStdout(), o, nets)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only display network IDs")
	f.BoolVar(&o.noTrunc, "no-trunc", false, "Do not truncate the output")
	addList(f, &o.filters, "filter", "f", "Provide filter values (e.g. 'driver=bridge')")
	f.StringVar(&o.format, "format", "", "Pretty-print networks using a Go template")
	return cmd
}

// writeNetworks prints networks sorted by name, as docker does.
func writeNetworks(out io.Writer, o networkListOptions, nets []api.Network) error {
	sort.SliceStable(nets, func(i, j int) bool { return naturalLess(nets[i].Name, nets[j].Name) })
	format := listFormat(o.format, o.quiet, defaultNetworkTable)
	rows := make([]any, len(nets))
	for i, n := range nets {
		rows[i] = networkRow{n: n, trunc: !o.noTrunc}
	}
	return writeRows(out, format, networkHeader, rows)
}

// networkRow is one network as --format templates see it; its methods are the placeholders.
type networkRow struct {
	n     api.Network
	trunc bool
}

func (r networkRow) ID() string {
	if r.trunc {
		return shortID(r.n.ID)
	}
	return r.n.ID
}

func (r networkRow) Name() string      { return r.n.Name }
func (r networkRow) Driver() string    { return r.n.Driver }
func (r networkRow) Scope() string     { return r.n.Scope }
func (r networkRow) IPv6() string      { return fmt.Sprint(r.n.EnableIPv6) }
func (r networkRow) Internal() string  { return fmt.Sprint(r.n.Internal) }
func (r networkRow) CreatedAt() string { return r.n.Created.String() }
func (r networkRow) Labels() string    { return joinLabels(r.n.Labels) }

// Label is the value of one label, for {{.Label "key"}}.
func (r networkRow) Label(name string) string { return r.n.Labels[name] }

func (r networkRow) MarshalJSON() ([]byte, error) { return rowJSON(r) }

// joinLabels renders labels as k=v,k=v, sorted so that output is stable between runs.
func joinLabels(labels map[string]string) string {
	kv := make([]string, 0, len(labels))
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// isBuiltinNetwork tells the networks the daemon creates itself from the user's.
func isBuiltinNetwork(name string) bool {
	return name == "bridge" || name == "host" || name == "none"
}
