package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/cluster"
	"github.com/cnet-dev/cnet/internal/daemon"
	"github.com/cnet-dev/cnet/internal/dockerplugin"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/driver/builtin"
	"github.com/cnet-dev/cnet/internal/driver/overlay"
)

// dumpStacksOn writes every goroutine's stack to stderr (the daemon's log) each time sig
// arrives, and keeps serving: how a hung daemon is diagnosed without killing it (dockerd does
// the same on SIGUSR1). It returns the function that stops listening.
func dumpStacksOn(sig os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				buf := make([]byte, 1<<20)
				for {
					n := runtime.Stack(buf, true)
					if n < len(buf) {
						buf = buf[:n]
						break
					}
					buf = make([]byte, 2*len(buf))
				}
				fmt.Fprintf(os.Stderr, "=== goroutine dump (%v) ===\n%s\n=== end of goroutine dump ===\n", sig, buf)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// daemonCommand is `cnet daemon`: it serves until SIGTERM or SIGINT and leaves containers and
// their networking running when it stops.
func daemonCommand() *cobra.Command {
	cfg := daemon.Config{}
	var debug bool
	var bridgeName string
	var cl clusterFlags
	var ipv6 bool
	var fixedCIDRv6, v6Pool string
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the cnet daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
			if h, _ := cmd.Flags().GetString("host"); h != "" {
				cfg.Host = h
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			defer dumpStacksOn(syscall.SIGUSR1)()
			store, err := cl.open(cfg.DataRoot)
			if err != nil {
				return err
			}
			var vtep overlay.Config
			if store != nil {
				vtep.VTEP = store.VTEP()
				cfg.Cluster = store
			}
			bc := bridge.Config{DefaultBridge: bridgeName, IPv6: ipv6}
			if bc.FixedCIDRv6, err = optionalPrefix6("--fixed-cidr-v6", fixedCIDRv6); err != nil {
				return err
			}
			if cfg.DefaultIPv6Pool, err = optionalPrefix6("--default-ipv6-pool", v6Pool); err != nil {
				return err
			}
			if bc.FixedCIDRv6.IsValid() && !ipv6 {
				return fmt.Errorf("--fixed-cidr-v6 needs --ipv6")
			}
			drivers, err := builtin.Registry(builtin.Config{Bridge: bc, Overlay: vtep})
			if err != nil {
				return err
			}
			cfg.Drivers = drivers
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			defer d.Close()
			return d.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataRoot, "data-root", "/var/lib/cnet", "directory of persistent state")
	f.StringVar(&cfg.ExecRoot, "exec-root", "/run/cnet", "directory of runtime state (namespaces, container files)")
	f.StringVar(&bridgeName, "bridge-name", "cnet0", "Linux interface name of the default bridge network")
	f.BoolVar(&debug, "debug", false, "log debug messages")
	f.StringVar(&cfg.Group, "group", "", "group that may use the API socket (default: root only)")
	f.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", nil, "registry (host[:port]) to pull from over plain http (repeatable)")
	f.StringVar(&cfg.DockerPlugin, "docker-plugin", "", "serve dockerd as its network and IPAM plugin \"cnet\" on this socket (--docker-plugin alone: "+dockerplugin.SocketPath+")")
	f.Lookup("docker-plugin").NoOptDefVal = dockerplugin.SocketPath
	f.BoolVar(&cfg.UserlandProxy, "userland-proxy", false, "also carry published ports in the daemon (for hosts where kernel NAT cannot serve every path)")
	f.BoolVar(&cfg.NoConnectTranslation, "no-connect-translation", false, "leave this host's own TCP connections to published ports to NAT instead of translating them at connect()")
	f.BoolVar(&ipv6, "ipv6", false, "give the default bridge network IPv6")
	f.StringVar(&fixedCIDRv6, "fixed-cidr-v6", "", "IPv6 subnet of the default bridge (with --ipv6; default: a /64 of --default-ipv6-pool)")
	f.StringVar(&v6Pool, "default-ipv6-pool", "", "IPv6 prefix (/8 to /64) that IPv6 networks without an IPv6 --subnet get their /64 from (default: a unique local /48 derived from the engine ID)")
	f.StringVar(&cl.store, "cluster-store", "", "cluster store for overlay networks: etcd://HOST:PORT[,HOST:PORT...]")
	f.StringVar(&cl.advertise, "cluster-advertise", "", "address (IP or interface) the other hosts of the cluster reach this one at: its VXLAN tunnel endpoint")
	f.StringArrayVar(&cl.opts, "cluster-store-opt", nil, "cluster store option KEY=VALUE: kv.cacertfile, kv.certfile, kv.keyfile, discovery.ttl, address.cooldown")
	return cmd
}

// optionalPrefix6 parses flag's value as an IPv6 prefix, "" meaning none.
func optionalPrefix6(flag, value string) (netip.Prefix, error) {
	if value == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(value)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid %s %q: want an IPv6 CIDR such as fd00:db8:1::/64", flag, value)
	}
	return p.Masked(), nil
}

// clusterFlags are --cluster-store, --cluster-advertise and --cluster-store-opt, Docker's
// historical names for the same settings.
type clusterFlags struct {
	store, advertise string
	opts             []string
}

// open makes the cluster store, or returns nil when no --cluster-store was given (one host,
// no etcd; overlay networks are refused with a message naming these flags).
func (f clusterFlags) open(dataRoot string) (*cluster.Store, error) {
	if f.store == "" {
		if f.advertise != "" || len(f.opts) > 0 {
			return nil, fmt.Errorf("--cluster-advertise and --cluster-store-opt need --cluster-store")
		}
		return nil, nil
	}
	eps, err := cluster.ParseStoreURL(f.store)
	if err != nil {
		return nil, err
	}
	if f.advertise == "" {
		return nil, fmt.Errorf("--cluster-store needs --cluster-advertise: the address the other hosts reach this one at")
	}
	vtep, err := cluster.ResolveAdvertise(f.advertise)
	if err != nil {
		return nil, err
	}
	cfg := cluster.Config{Endpoints: eps, VTEP: vtep}
	if err := cluster.ApplyOptions(&cfg, f.opts); err != nil {
		return nil, err
	}
	if cfg.HostID, err = cluster.HostID(dataRoot); err != nil {
		return nil, err
	}
	cfg.HostName, _ = os.Hostname()
	return cluster.Open(cfg)
}
