package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/daemon"
	"github.com/cnet-dev/cnet/internal/driver/bridge"
	"github.com/cnet-dev/cnet/internal/driver/builtin"
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
			drivers, err := builtin.Registry(builtin.Config{Bridge: bridge.Config{DefaultBridge: bridgeName}})
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
	f.BoolVar(&cfg.UserlandProxy, "userland-proxy", false, "also carry published ports in the daemon (for hosts where kernel NAT cannot serve every path)")
	f.BoolVar(&cfg.NoConnectTranslation, "no-connect-translation", false, "leave this host's own TCP connections to published ports to NAT instead of translating them at connect()")
	return cmd
}
