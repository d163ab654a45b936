package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cnet-dev/cnet/internal/api"
	"github.com/cnet-dev/cnet/internal/portmap"
)

type runOptions struct {
	// createOnly is `create`: the container is made and its ID printed, not started.
	createOnly  bool
	detach      bool
	autoRemove  bool
	interactive bool
	tty         bool
	name        string
	hostname    string
	domainname  string
	network     string
	ip          string
	ip6         string
	aliases     []string
	env         []string
	rootfs      string
	entrypoint  optionalString // --entrypoint
	user        string
	workdir     string
	links       []string
	dns         []string
	dnsSearch   []string
	dnsOptions  []string
	addHosts    []string
	expose      []string
	publish     []string
	publishAll  bool
}

func newRunCommand() *cobra.Command {
	var o runOptions
	return o.command()
}

// newCreateCommand is `create`: run's options, without starting (so without -d).
func newCreateCommand() *cobra.Command {
	o := runOptions{createOnly: true}
	cmd := o.command()
	cmd.Use = "create [OPTIONS] IMAGE [COMMAND] [ARG...]"
	cmd.Short = "Create a new container"
	cmd.Long = strings.Replace(cmd.Long, "Create and run a new container", "Create a new container", 1)
	return cmd
}

func (o *runOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Long: "Create and run a new container from an image.\n\nIMAGE is one of cnet's (cnet images: load, pull, import). " +
			"With --rootfs DIR there is no image: the first argument is the command, run chrooted in DIR; " +
			"--rootfs / runs it from the host's own filesystem.",
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, args)
		},
	}
	f := cmd.Flags()
	// Options end at the command, so that the command's own flags are left alone.
	f.SetInterspersed(false)
	// -h is --hostname here, as in docker; help stays reachable as --help.
	f.Bool("help", false, "Print usage")
	if !o.createOnly {
		f.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
	}
	f.BoolVar(&o.autoRemove, "rm", false, "Automatically remove the container when it exits")
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.StringVar(&o.name, "name", "", "Assign a name to the container")
	f.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	f.StringVar(&o.domainname, "domainname", "", "Container NIS domain name")
	f.StringVar(&o.network, "network", "default", "Connect a container to a network")
	f.StringVar(&o.network, "net", "default", "Connect a container to a network")
	f.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringVar(&o.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	addList(f, &o.aliases, "network-alias", "", "Add network-scoped alias for the container")
	addList(f, &o.aliases, "net-alias", "", "Add network-scoped alias for the container")
	addList(f, &o.env, "env", "e", "Set environment variables")
	f.StringVar(&o.rootfs, "rootfs", "", "Run from this directory instead of an image (the first argument is then the command; / is the host's own filesystem)")
	f.Var(&o.entrypoint, "entrypoint", "Overwrite the default ENTRYPOINT of the image")
	f.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	addList(f, &o.links, "link", "", "Add link to another container (name[:alias])")
	addList(f, &o.dns, "dns", "", "Set custom DNS servers")
	addList(f, &o.dnsSearch, "dns-search", "", "Set custom DNS search domains")
	addList(f, &o.dnsOptions, "dns-option", "", "Set DNS options")
	addList(f, &o.addHosts, "add-host", "", "Add a custom host-to-IP mapping (host:ip)")
	addList(f, &o.expose, "expose", "", "Expose a port or a range of ports")
	addList(f, &o.publish, "publish", "p", "Publish a container's port(s) to the host")
	f.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	_ = f.MarkHidden("net")
	_ = f.MarkHidden("net-alias")
	return cmd
}

// request builds the create request the daemon expects from the flags and the command.
func (o *runOptions) request(args []string) (api.ContainerCreateRequest, error) {
	// Docker's order, IMAGE [COMMAND] [ARG...]; with --rootfs there is no image.
	image, command, rootfs := "", args, o.rootfs
	if rootfs == "" {
		image, command = args[0], args[1:]
	} else if rootfs == "/" {
		rootfs = "" // the host's own filesystem, no chroot
	}
	var entrypoint []string
	if o.entrypoint.set {
		if rootfs != "" || image == "" {
			return api.ContainerCreateRequest{}, fmt.Errorf("--entrypoint replaces an image's entrypoint: it needs an image, not --rootfs")
		}
		entrypoint = []string{}
		if o.entrypoint.value != "" {
			entrypoint = []string{o.entrypoint.value}
		}
	}
	env, err := envList(o.env)
	if err != nil {
		return api.ContainerCreateRequest{}, err
	}
	bindings, err := portBindings(o.publish)
	if err != nil {
		return api.ContainerCreateRequest{}, err
	}
	exposed := exposedPorts(o.expose)
	for key := range bindings {
		if exposed == nil {
			exposed = map[string]struct{}{}
		}
		exposed[key] = struct{}{} // as docker: a published port is an exposed one
	}
	attach := !o.detach
	endpoints := map[string]*api.EndpointSettings{}
	if o.ip != "" || o.ip6 != "" || len(o.aliases) > 0 {
		ep := &api.EndpointSettings{Aliases: o.aliases}
		if o.ip != "" || o.ip6 != "" {
			ep.IPAMConfig = &api.EndpointIPAMConfig{IPv4Address: o.ip, IPv6Address: o.ip6}
		}
		endpoints[o.network] = ep
	}
	return api.ContainerCreateRequest{
		ContainerConfig: api.ContainerConfig{
			Hostname:     o.hostname,
			Domainname:   o.domainname,
			User:         o.user,
			AttachStdin:  attach && o.interactive,
			AttachStdout: attach,
			AttachStderr: attach,
			Tty:          o.tty,
			OpenStdin:    o.interactive,
			// Stdin closes when the client that attached it goes, so a piped input's end
			// reaches the process as EOF.
			StdinOnce:    attach && o.interactive,
			Env:          env,
			Cmd:          command,
			Entrypoint:   entrypoint,
			Image:        image,
			WorkingDir:   o.workdir,
			Rootfs:       rootfs,
			ExposedPorts: exposed,
		},
		HostConfig: &api.HostConfig{NetworkMode: o.network, AutoRemove: o.autoRemove, Links: o.links,
			DNS: o.dns, DNSSearch: o.dnsSearch, DNSOptions: o.dnsOptions, ExtraHosts: o.addHosts,
			PortBindings: bindings, PublishAllPorts: o.publishAll},
		NetworkingConfig: &api.NetworkingConfig{EndpointsConfig: endpoints},
	}, nil
}

func (o *runOptions) run(cmd *cobra.Command, args []string) error {
	req, err := o.request(args)
	if err != nil {
		return runFailure(cmd, err, 125)
	}
	if err := checkTTY(cmd.InOrStdin(), req.AttachStdin, req.Tty); err != nil {
		return runFailure(cmd, err, 125)
	}
	if req.Tty {
		req.HostConfig.ConsoleSize = terminalSize(cmd.OutOrStdout())
	}
	c, err := newClient(cmd)
	if err != nil {
		return runFailure(cmd, err, 125)
	}
	ctx := cmd.Context()
	created, err := c.ContainerCreate(ctx, o.name, req)
	if err != nil {
		return runFailure(cmd, err, 125)
	}
	for _, w := range created.Warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), "WARNING:", w)
	}
	if o.createOnly {
		fmt.Fprintln(cmd.OutOrStdout(), created.ID)
		return nil
	}
	if o.detach {
		if err := c.ContainerStart(ctx, created.ID); err != nil {
			return runFailure(cmd, err, startFailureCode(err))
		}
		fmt.Fprintln(cmd.OutOrStdout(), created.ID)
		return nil
	}

	// Attach and register the wait before starting, so that neither the first output nor a
	// quick exit can be missed.
	stream, err := c.ContainerAttach(ctx, created.ID)
	if err != nil {
		return runFailure(cmd, err, 125)
	}
	defer stream.Close()
	resC, errC := c.ContainerWait(ctx, created.ID, "next-exit")
	select {
	case err := <-errC:
		return runFailure(cmd, err, 125)
	default:
	}
	if err := c.ContainerStart(ctx, created.ID); err != nil {
		return runFailure(cmd, err, startFailureCode(err))
	}
	resize := func(rows, cols uint16) error { return c.ContainerResize(ctx, created.ID, rows, cols) }
	if err := connectStdio(cmd, stream, req.AttachStdin, req.Tty, resize); err != nil {
		return err
	}
	select {
	case res := <-resC:
		if res.StatusCode != 0 {
			return &ExitError{Code: res.StatusCode}
		}
		return nil
	case err := <-errC:
		return runFailure(cmd, err, 125)
	}
}

// runFailure reports a failure of run itself as docker does ("cnet: <error>.", a pointer to
// --help), with an exit code that cannot be mistaken for a small one of the process's.
func runFailure(cmd *cobra.Command, err error, code int) error {
	if isConnectError(err) {
		return &ExitError{Code: code, Message: err.Error()}
	}
	msg := strings.TrimSuffix(describeError(err), ".")
	return &ExitError{Code: code, Message: fmt.Sprintf("%s: %s.\nSee '%s --help'.", cmd.Root().Name(), msg, cmd.CommandPath())}
}

// exposedPorts turns --expose values into Docker's "port/proto" keys; a range exposes each
// port of it. The daemon validates them.
func exposedPorts(values []string) map[string]struct{} {
	if len(values) == 0 {
		return nil
	}
	out := map[string]struct{}{}
	for _, v := range values {
		port, proto, _ := strings.Cut(v, "/")
		if proto == "" {
			proto = "tcp"
		}
		lo, hi, isRange := strings.Cut(port, "-")
		if !isRange {
			out[port+"/"+proto] = struct{}{}
			continue
		}
		var a, b int
		if _, err := fmt.Sscan(lo, &a); err != nil {
			out[v] = struct{}{} // let the daemon reject it with a clear message
			continue
		}
		if _, err := fmt.Sscan(hi, &b); err != nil || b < a || b-a > 65535 {
			out[v] = struct{}{}
			continue
		}
		for p := a; p <= b; p++ {
			out[fmt.Sprintf("%d/%s", p, proto)] = struct{}{}
		}
	}
	return out
}

// portBindings turns -p values into Docker's PortBindings, one entry per container port.
func portBindings(specs []string) (map[string][]api.PortBinding, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string][]api.PortBinding{}
	for _, spec := range specs {
		ms, err := portmap.ParseSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("invalid -p %q: %w", spec, err)
		}
		for _, m := range ms {
			b := api.PortBinding{}
			if m.HostIP.IsValid() {
				b.HostIP = m.HostIP.String()
			}
			switch {
			case m.HostPortEnd != 0:
				b.HostPort = fmt.Sprintf("%d-%d", m.HostPort, m.HostPortEnd)
			case m.HostPort != 0:
				b.HostPort = fmt.Sprint(m.HostPort)
			}
			key := m.Port().String()
			out[key] = append(out[key], b)
		}
	}
	return out, nil
}

// optionalString is a string flag that knows whether it was given: `--entrypoint ""` (clear the
// image's) differs from no --entrypoint (keep it).
type optionalString struct {
	value string
	set   bool
}

func (o *optionalString) Set(v string) error { o.value, o.set = v, true; return nil }
func (o *optionalString) String() string     { return o.value }
func (o *optionalString) Type() string       { return "string" }
