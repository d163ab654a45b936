package cli

import (
	"fmt"
	"io"
	"regexp"
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
			filter, err := parseNetworkFilters(o.filters)
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			nets, err := c.NetworkList(cmd.Context())
			if err != nil {
				return err
			}
			return writeNetworks(cmd.OutOrStdout(), o, filter.apply(nets))
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

// networkFilter holds -f values by key. Values of one key are alternatives; different keys
// must all match, as in docker.
type networkFilter map[string][]string

var networkFilterKeys = map[string]bool{"driver": true, "id": true, "label": true, "name": true, "scope": true, "type": true}

func parseNetworkFilters(args []string) (networkFilter, error) {
	f := networkFilter{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter %q (expected name=value)", a)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if !networkFilterKeys[k] {
			return nil, fmt.Errorf("invalid filter '%s': use one of driver, id, label, name, scope, type", k)
		}
		if k == "type" && v != "custom" && v != "builtin" {
			return nil, fmt.Errorf("invalid filter: 'type'='%s': use type=custom or type=builtin", v)
		}
		f[k] = append(f[k], v)
	}
	return f, nil
}

func (f networkFilter) apply(nets []api.Network) []api.Network {
	var out []api.Network
	for _, n := range nets {
		if f.match(n) {
			out = append(out, n)
		}
	}
	return out
}

func (f networkFilter) match(n api.Network) bool {
	for key, vals := range f {
		ok := false
		for _, v := range vals {
			if networkFilterMatch(key, v, n) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func networkFilterMatch(key, v string, n api.Network) bool {
	switch key {
	case "name":
		// docker matches names as regular expressions, so a plain word matches as a substring.
		if re, err := regexp.Compile(v); err == nil {
			return re.MatchString(n.Name)
		}
		return strings.Contains(n.Name, v)
	case "id":
		return strings.HasPrefix(n.ID, v)
	case "driver":
		return n.Driver == v
	case "scope":
		return n.Scope == v
	case "type":
		return isBuiltinNetwork(n.Name) == (v == "builtin")
	case "label":
		lk, lv, withValue := strings.Cut(v, "=")
		got, has := n.Labels[lk]
		return has && (!withValue || got == lv)
	}
	return false
}

// isBuiltinNetwork tells the networks the daemon creates itself from the user's.
func isBuiltinNetwork(name string) bool {
	return name == "bridge" || name == "host" || name == "none"
}
