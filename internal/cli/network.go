package cli

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
)

func newNetworkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network COMMAND",
		Short: "Manage networks",
		Args:  noSubcommand,
		RunE:  showHelp,
	}
	cmd.AddCommand(
		newNetworkCreateCommand(),
		newNetworkListCommand(),
		newNetworkInspectCommand(),
		newNetworkRemoveCommand(),
		newNetworkPruneCommand(),
		newNetworkConnectCommand(),
		newNetworkDisconnectCommand(),
	)
	return cmd
}

type networkCreateOptions struct {
	driver     string
	subnets    []string
	ipRanges   []string
	gateways   []string
	auxAddrs   map[string]string
	opts       map[string]string
	labels     map[string]string
	ipamDriver string
	ipamOpts   map[string]string
	internal   bool
	attachable bool
	ipv6       bool
	ipv4       *bool // nil unless --ipv4 was given
}

func newNetworkCreateCommand() *cobra.Command {
	o := networkCreateOptions{
		auxAddrs: map[string]string{}, opts: map[string]string{},
		labels: map[string]string{}, ipamOpts: map[string]string{},
	}
	return o.command()
}

func (o *networkCreateOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := o.request(args[0])
			if err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			resp, err := c.NetworkCreate(cmd.Context(), req)
			if err != nil {
				return err
			}
			if resp.Warning != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", resp.Warning)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.driver, "driver", "d", "bridge", "Driver to manage the Network")
	addList(f, &o.subnets, "subnet", "", "Subnet in CIDR format that represents a network segment")
	addList(f, &o.ipRanges, "ip-range", "", "Allocate container ip from a sub-range")
	addList(f, &o.gateways, "gateway", "", "IPv4 or IPv6 Gateway for the master subnet")
	addMap(f, o.auxAddrs, "aux-address", "", "Auxiliary IPv4 or IPv6 addresses used by Network driver")
	addMap(f, o.opts, "opt", "o", "Set driver specific options")
	addMap(f, o.labels, "label", "", "Set metadata on a network")
	f.StringVar(&o.ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	addMap(f, o.ipamOpts, "ipam-opt", "", "Set IPAM driver specific options")
	f.BoolVar(&o.internal, "internal", false, "Restrict external access to the network")
	f.BoolVar(&o.attachable, "attachable", false, "Enable manual container attachment")
	f.BoolVar(&o.ipv6, "ipv6", false, "Enable IPv6 networking")
	ipv4 := f.Bool("ipv4", true, "Enable IPv4 networking (--ipv4=false with --ipv6: an IPv6-only network)")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		if cmd.Flags().Changed("ipv4") {
			o.ipv4 = ipv4
		}
	}
	return cmd
}

func (o *networkCreateOptions) request(name string) (api.NetworkCreateRequest, error) {
	pools, err := ipamPools(o.subnets, o.ipRanges, o.gateways, o.auxAddrs)
	if err != nil {
		return api.NetworkCreateRequest{}, err
	}
	return api.NetworkCreateRequest{
		Name:           name,
		CheckDuplicate: true,
		Driver:         o.driver,
		EnableIPv6:     o.ipv6,
		EnableIPv4:     o.ipv4,
		IPAM:           &api.IPAM{Driver: o.ipamDriver, Options: nilIfEmpty(o.ipamOpts), Config: pools},
		Internal:       o.internal,
		Attachable:     o.attachable,
		Options:        nilIfEmpty(o.opts),
		Labels:         nilIfEmpty(o.labels),
	}, nil
}

// ipamPools pairs each --ip-range, --gateway and --aux-address with the --subnet that contains
// it, as docker does, so several pools can be given in one command in any flag order.
func ipamPools(subnets, ranges, gateways []string, aux map[string]string) ([]api.IPAMConfig, error) {
	if len(subnets) < len(ranges) || len(subnets) < len(gateways) {
		return nil, errors.New("every ip-range or gateway must have a corresponding subnet")
	}
	pools := make([]api.IPAMConfig, len(subnets))
	prefixes := make([]netip.Prefix, len(subnets))
	for i, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid subnet %s: want CIDR notation such as 172.20.0.0/16", s)
		}
		p = p.Masked()
		for _, q := range prefixes[:i] {
			if q.Overlaps(p) {
				return nil, errors.New("multiple overlapping subnet configuration is not supported")
			}
		}
		prefixes[i] = p
		pools[i] = api.IPAMConfig{Subnet: s}
	}
	// owner finds the pool whose subnet contains addr (an address or a CIDR).
	owner := func(what, addr string) (*api.IPAMConfig, error) {
		a, err := netip.ParseAddr(addr)
		if strings.Contains(addr, "/") {
			var p netip.Prefix
			p, err = netip.ParsePrefix(addr)
			a = p.Addr()
		}
		if err != nil {
			return nil, fmt.Errorf("invalid %s %s: not an IP address", what, addr)
		}
		for i, p := range prefixes {
			if p.Contains(a) {
				return &pools[i], nil
			}
		}
		return nil, fmt.Errorf("no matching subnet for %s %s", what, addr)
	}
	for _, r := range ranges {
		pool, err := owner("range", r)
		if err != nil {
			return nil, err
		}
		if pool.IPRange != "" {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r, pool.IPRange, pool.Subnet)
		}
		pool.IPRange = r
	}
	for _, g := range gateways {
		pool, err := owner("gateway", g)
		if err != nil {
			return nil, err
		}
		if pool.Gateway != "" {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", g, pool.Gateway, pool.Subnet)
		}
		pool.Gateway = g
	}
	names := make([]string, 0, len(aux))
	for name := range aux {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pool, err := owner("aux-address", aux[name])
		if err != nil {
			return nil, err
		}
		if pool.AuxiliaryAddresses == nil {
			pool.AuxiliaryAddresses = map[string]string{}
		}
		pool.AuxiliaryAddresses[name] = aux[name]
	}
	return pools, nil
}

func newNetworkInspectCommand() *cobra.Command {
	var format string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			var objs []inspected
			var errs []string
			for _, ref := range args {
				inspect := c.NetworkInspectWithRaw
				if verbose {
					inspect = c.NetworkInspectVerbose
				}
				n, raw, err := inspect(cmd.Context(), ref)
				if err != nil {
					if isConnectError(err) {
						return err
					}
					errs = append(errs, describeError(notFound(err, "network", ref)))
					continue
				}
				objs = append(objs, inspected{typed: n, raw: raw})
			}
			if err := writeInspect(cmd.OutOrStdout(), format, objs); err != nil {
				return err
			}
			return joinErrors(errs)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format the output using the given Go template")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics: a global network's peers, the cluster store against this host's kernel")
	return cmd
}

func newNetworkRemoveCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			failed := false
			for _, name := range args {
				if err := c.NetworkRemove(cmd.Context(), name); err != nil {
					if isConnectError(err) {
						return err
					}
					fmt.Fprintln(cmd.ErrOrStderr(), describeError(notFound(err, "network", name)))
					failed = true
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			if failed {
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
}

const pruneWarning = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "

// confirm prints prompt and reports whether the answer on stdin is y, as docker's prune asks.
func confirm(cmd *cobra.Command, prompt string) bool {
	fmt.Fprint(cmd.OutOrStdout(), prompt)
	answer, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	return strings.ToLower(strings.TrimSpace(answer)) == "y"
}

func newNetworkPruneCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if !force && !confirm(cmd, pruneWarning) {
				return nil
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			report, err := c.NetworksPrune(cmd.Context())
			if err != nil {
				return err
			}
			if len(report.NetworksDeleted) > 0 {
				// docker ends the list with an empty line; scripts may count on it.
				fmt.Fprintln(out, "Deleted Networks:\n"+strings.Join(report.NetworksDeleted, "\n")+"\n")
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

func newNetworkConnectCommand() *cobra.Command {
	var (
		ip, ip6        string
		aliases, links []string
		driverOpts     = map[string]string{}
	)
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return c.NetworkConnect(cmd.Context(), args[0], api.NetworkConnectRequest{
				Container: args[1],
				EndpointConfig: &api.EndpointSettings{
					IPAMConfig: &api.EndpointIPAMConfig{IPv4Address: ip, IPv6Address: ip6},
					Links:      links,
					Aliases:    aliases,
					DriverOpts: nilIfEmpty(driverOpts),
				},
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	addList(f, &aliases, "alias", "", "Add network-scoped alias for the container")
	addList(f, &links, "link", "", "Add link to another container")
	addMap(f, driverOpts, "driver-opt", "", "driver options for the network")
	return cmd
}

func newNetworkDisconnectCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			return c.NetworkDisconnect(cmd.Context(), args[0], api.NetworkDisconnectRequest{Container: args[1], Force: force})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

// isConnectError tells a missing daemon apart from per-object failures, so that a command over
// several objects reports it once instead of once per object.
func isConnectError(err error) bool {
	var ce *api.ConnectError
	return errors.As(err, &ce)
}
