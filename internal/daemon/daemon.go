// Package daemon wires cnet together: it opens the store, builds the controller, restores
// containers and networks after a restart, and serves the API on a unix socket. It implements
// api.Backend by translating between the API's Docker shapes and the controller's records.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/controller"
	"github.com/cnet-dev/cnet/internal/dockerplugin"
	"github.com/cnet-dev/cnet/internal/events"
	"github.com/cnet-dev/cnet/internal/image"
	"github.com/cnet-dev/cnet/internal/store"
)

// Config is the daemon's command line.
type Config struct {
	DataRoot string // bbolt state
	ExecRoot string // namespaces, per-container files, the socket
	Host     string // unix:///path
	// Drivers are the network drivers, filled by the binary's main from driver/builtin with
	// their part of the command line (the default bridge's name, ...).
	Drivers *controller.Drivers
	// UserlandProxy also carries published ports in the daemon (goroutines), for hosts where
	// kernel NAT cannot serve every path. Off by default: NAT covers them here.
	UserlandProxy bool
	// NoConnectTranslation leaves the host's own TCP connections to published ports to NAT,
	// as Docker does, instead of translating them at connect() (see package hostlocal).
	NoConnectTranslation bool
	// Cluster is the cluster store (--cluster-store), for overlay networks; nil without one.
	// The daemon starts its loops once this host's endpoints are restored, and closes it.
	Cluster *controller.ClusterStore
	// InsecureRegistries are registries (host[:port]) pulled from over plain http.
	InsecureRegistries []string
	// DockerPlugin, if set, is the socket where dockerd finds cnet as its network and IPAM
	// plugin (dockerplugin.SocketPath; see docker.go).
	DockerPlugin string
	// Group, if set, owns the socket (mode 0660), so its members may use cnet without root;
	// otherwise the socket is root's alone.
	Group string
	// DefaultIPv6Pool (--default-ipv6-pool) is where IPv6 networks without an IPv6 --subnet
	// get their /64; unset, a unique local /48 derived from the engine ID (ipam.ULAPrefix).
	DefaultIPv6Pool netip.Prefix
}

// DefaultHost is where the daemon listens and the CLI connects unless told otherwise.
const DefaultHost = "unix:///run/cnet/cnet.sock"

// Daemon is the running daemon.
type Daemon struct {
	cfg   Config
	store *store.Store
	ctrl  *controller.Controller

	mu         sync.Mutex
	containers map[string]*ctr // by ID
	execs      map[string]*execRecord

	// stopReaper ends the loop that removes CNI attachments whose runtime went (cni.go).
	stopReaper func()
	// closeDrivers stops the network drivers that run goroutines.
	closeDrivers func()
	stopCluster  func() // nil without a cluster store
	// cniMu serialises CNI attachments (see cni.go): one runtime container's ADDs and DELs
	// come one at a time from its runtime anyway, and different containers' are cheap enough
	// not to need more. Never held with a container's lock.
	cniMu sync.Mutex
	// dockerMu serialises dockerd's plugin calls (docker.go) and guards dockerPools, the
	// pools requested whose network dockerd has not created yet. Taken like cniMu: before
	// any controller lock, never with a container's or cniMu.
	dockerMu    sync.Mutex
	dockerPools map[string]*dockerPool
	// images is the local image store (data root/image).
	images *image.Store
	// events is what GET /events streams (events.go).
	events *events.Log
}

// SocketPath returns the filesystem path of a unix:// host.
func SocketPath(host string) (string, error) {
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok || path == "" {
		return "", fmt.Errorf("invalid host %q: cnet listens on unix sockets only, as unix:///path/to/cnet.sock", host)
	}
	return path, nil
}

// New opens the state and restores what a previous daemon left.
func New(cfg Config) (*Daemon, error) {
	if cfg.Host == "" {
		cfg.Host = DefaultHost
	}
	if err := os.MkdirAll(cfg.ExecRoot, 0o711); err != nil {
		return nil, fmt.Errorf("creating exec root %s: %w", cfg.ExecRoot, err)
	}
	// Containers on a bridge reach the world through the host's routing.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return nil, fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	st, err := store.Open(cfg.DataRoot)
	if err != nil {
		return nil, err
	}
	images, err := image.Open(filepath.Join(cfg.DataRoot, "image"))
	if err != nil {
		st.Close()
		return nil, err
	}
	// Drivers that run goroutines start before the controller restores their networks, and
	// stop with the daemon.
	drvCtx, stopDrivers := context.WithCancel(context.Background())
	if err := cfg.Drivers.Start(drvCtx); err != nil {
		stopDrivers()
		st.Close()
		return nil, err
	}
	closeDrivers := func() {
		stopDrivers()
		if err := cfg.Drivers.Close(); err != nil {
			slog.Error("stopping network drivers", "err", err)
		}
	}
	v6Pool := cfg.DefaultIPv6Pool
	if !v6Pool.IsValid() {
		v6Pool = controller.ULAPrefix(engineID(cfg.DataRoot))
	}
	ctrl, err := controller.New(controller.Config{Store: st, ExecRoot: cfg.ExecRoot, Drivers: cfg.Drivers,
		UserlandProxy: cfg.UserlandProxy, NoConnectTranslation: cfg.NoConnectTranslation, Cluster: cfg.Cluster,
		DefaultIPv6Pool: v6Pool})
	if err != nil {
		closeDrivers()
		st.Close()
		return nil, err
	}
	d := &Daemon{cfg: cfg, store: st, ctrl: ctrl, containers: map[string]*ctr{}, execs: map[string]*execRecord{},
		closeDrivers: closeDrivers, dockerPools: map[string]*dockerPool{}, images: images, events: events.New()}
	if err := d.restore(); err != nil {
		ctrl.Close()
		closeDrivers()
		st.Close()
		return nil, err
	}
	if cfg.Cluster != nil {
		// Only now, with this host's endpoints and addresses restored, may the store's
		// reconcile delete what it holds of this host that the host does not have.
		ctrl.AdoptClusterEndpoints()
		cfg.Cluster.Start()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); ctrl.RunCluster(ctx) }()
		d.stopCluster = func() {
			cancel()
			<-done
			if err := cfg.Cluster.Close(); err != nil {
				slog.Error("closing the cluster store", "err", err)
			}
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); d.runCNIReaper(stop) }()
	d.stopReaper = func() { close(stop); <-done }
	return d, nil
}

// Serve listens on the configured socket until ctx is done, then stops listening. Containers
// and their networking are left running: a daemon restart must not disturb them.
func (d *Daemon) Serve(ctx context.Context) error {
	path, err := SocketPath(d.cfg.Host)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return fmt.Errorf("creating socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := restrictSocket(path, d.cfg.Group); err != nil {
		l.Close()
		return err
	}
	// Listening but not yet answering: what runtimes sent while the daemon was down comes
	// before what they send now (connections wait in the backlog meanwhile).
	d.completePendingCNI(api.CNIPendingDir(path))
	srv := &http.Server{Handler: api.NewHandler(d), ReadHeaderTimeout: 10 * time.Second}
	plugin, err := d.serveDockerPlugin()
	if err != nil {
		l.Close()
		return err
	}
	defer plugin()
	slog.Info("cnet daemon listening", "socket", path, "data-root", d.cfg.DataRoot, "exec-root", d.cfg.ExecRoot)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		_ = os.Remove(path)
		return nil
	case err := <-errc:
		return fmt.Errorf("serving the API: %w", err)
	}
}

// serveDockerPlugin listens for dockerd on Config.DockerPlugin (when set) and returns the
// function that stops it. dockerd finds the plugin by the socket's file name.
func (d *Daemon) serveDockerPlugin() (stop func(), err error) {
	path := d.cfg.DockerPlugin
	if path == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the Docker plugin directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale Docker plugin socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening for dockerd on %s: %w", path, err)
	}
	// dockerd runs as root; nobody else has business with the plugin.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restricting %s: %w", path, err)
	}
	srv := &http.Server{Handler: dockerplugin.NewHandler(d), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("serving dockerd's plugin calls", "err", err)
		}
	}()
	slog.Info("serving dockerd as its network and IPAM plugin", "socket", path)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = os.Remove(path)
	}, nil
}

// Close releases the state file and the firewall's netlink socket (its rules stay, and serve
// the host's own connections too once the connect() translation is detached).
func (d *Daemon) Close() error {
	d.stopReaper()
	if d.stopCluster != nil {
		d.stopCluster()
	}
	if err := d.ctrl.Close(); err != nil {
		slog.Error("closing the controller", "err", err)
	}
	d.closeDrivers()
	return d.store.Close()
}

// restrictSocket makes the API socket 0660, owned by root and by group when one is named:
// anyone who can reach the socket can create networks and run processes as root.
func restrictSocket(path, group string) error {
	gid := 0
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			return fmt.Errorf("socket group %q: %w", group, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return fmt.Errorf("socket group %q has a non-numeric gid %q", group, g.Gid)
		}
	}
	if err := os.Chown(path, 0, gid); err != nil {
		return fmt.Errorf("giving socket %s to root:%d: %w", path, gid, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return fmt.Errorf("restricting socket %s: %w", path, err)
	}
	return nil
}
