package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// docker is Debian's docker.io (Docker 20.10) as a user gets it — userland proxy on, iptables
// (nftables underneath) — with a private data root, exec root, socket and bridge subnet, in a
// throwaway namespace. It runs with --live-restore so that its containers outlive a daemon
// restart, as cnet's do, for the scale benchmark; and with --dns 127.0.0.1 so that nothing is
// forwarded off the machine.
//
// Attach times `docker network connect`, the command a Docker user runs (client start
// included, as it is in every CLI-timed system); AttachAPI times the same call through the
// API for the CLI-free comparison.
type docker struct {
	env   *Env
	h     *netnsHost
	dir   string
	sock  string
	cli   string // Debian's client, which matches its daemon
	pid   int
	names []string // containers the attach benchmark made
}

func newDocker() *docker { return &docker{} }

func (d *docker) Name() string { return "Docker" }

func (d *docker) Start(env *Env) error {
	d.env = env
	var err error
	if d.dir, err = env.Dir("docker"); err != nil {
		return err
	}
	d.sock = filepath.Join(d.dir, "docker.sock")
	d.cli = "docker"
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		d.cli = "/usr/bin/docker"
	}
	if d.h, err = newNetnsHost("cnetcmp-docker"); err != nil {
		return err
	}
	if err := d.startDaemon(); err != nil {
		return err
	}
	if _, err := d.run("import", env.Image, "busybox"); err != nil {
		return fmt.Errorf("importing the busybox image into Docker: %w", err)
	}
	return nil
}

func (d *docker) startDaemon() error {
	c := d.h.Cmd("dockerd", "--data-root", filepath.Join(d.dir, "data"), "--exec-root", filepath.Join(d.dir, "exec"),
		"-H", "unix://"+d.sock, "--pidfile", filepath.Join(d.dir, "docker.pid"), "--dns", "127.0.0.1",
		"--bip", "172.30.0.1/16", "--live-restore", "--cgroup-parent", dockerCgroup)
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		return fmt.Errorf("starting dockerd: %w", err)
	}
	go func() { _ = c.Wait() }()
	for range 240 {
		if _, err := d.run("version"); err == nil {
			b, err := os.ReadFile(filepath.Join(d.dir, "docker.pid"))
			if err != nil {
				return fmt.Errorf("dockerd answers but wrote no pid file: %w", err)
			}
			d.pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
			return err
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("dockerd did not answer within 60 s: see %s/dockerd.log", d.dir)
}

func (d *docker) cmd(args ...string) *exec.Cmd {
	return exec.Command(d.cli, append([]string{"-H", "unix://" + d.sock}, args...)...)
}

func (d *docker) run(args ...string) (string, error) { return runCmd(d.cmd(args...)) }

// runContainers starts containers name0..name(n-1) on net, a few at a time (not timed).
func (d *docker) runContainers(prefix string, n int, net string) error {
	return parallel(n, 4, func(i int) error {
		_, err := d.run("run", "-d", "--name", fmt.Sprintf("%s%d", prefix, i), "--net", net, "busybox", "/bin/busybox", "sleep", "36000")
		return err
	})
}

func (d *docker) PrepareAttach(n int) error {
	if _, err := d.run("network", "create", "attachnet"); err != nil {
		return err
	}
	d.names = make([]string, n)
	for i := range d.names {
		d.names[i] = fmt.Sprintf("a%d", i)
	}
	return d.runContainers("a", n, "bridge")
}

func (d *docker) Attach(i int) (time.Duration, error) {
	return timed(d.cmd("network", "connect", "attachnet", d.names[i]))
}

func (d *docker) Detach(i int) (time.Duration, error) {
	return timed(d.cmd("network", "disconnect", "attachnet", d.names[i]))
}

// AttachAPI times POST /networks/attachnet/connect on the daemon's socket, no client process.
func (d *docker) AttachAPI(i int) (time.Duration, error) {
	return apiConnect(d.sock, "attachnet", d.names[i], true)
}

func (d *docker) DetachAPI(i int) (time.Duration, error) {
	return apiConnect(d.sock, "attachnet", d.names[i], false)
}

func (d *docker) PublishRange(first, count int) (PublishResult, error) {
	last := first + count - 1
	spec := fmt.Sprintf("%d-%d:%d-%d", first, last, first, last)
	return measurePublish(d.h.Cmd, d.pid, func() (time.Duration, error) {
		return timed(d.cmd("run", "-d", "--name", "noports", "busybox", "/bin/busybox", "sleep", "36000"))
	}, func() (time.Duration, error) {
		return timed(d.cmd("run", "-d", "--name", "ports", "-p", spec, "busybox", "/bin/busybox", "sleep", "36000"))
	})
}

func (d *docker) DNS(names int, cfg DNSConfig) (DNSResult, error) {
	if _, err := d.run("network", "create", "dnsnet"); err != nil {
		return DNSResult{}, err
	}
	if err := d.runContainers("n", names, "dnsnet"); err != nil {
		return DNSResult{}, err
	}
	if _, err := d.run("run", "-d", "--name", "client", "--net", "dnsnet", "busybox", "/bin/busybox", "sleep", "36000"); err != nil {
		return DNSResult{}, err
	}
	pid, err := d.pidOf("client")
	if err != nil {
		return DNSResult{}, err
	}
	return runDNSPerf(d.env, inPid(pid), "127.0.0.11", "n", names, cfg)
}

func (d *docker) pidOf(name string) (int, error) {
	out, err := d.run("inspect", "-f", "{{.State.Pid}}", name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

func (d *docker) ipOf(name, net string) (string, error) {
	out, err := d.run("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", net), name)
	return strings.TrimSpace(out), err
}

func (d *docker) DataPath(seconds int, also []path) (DataPathResult, error) {
	var r DataPathResult
	if _, err := d.run("network", "create", "datanet"); err != nil {
		return r, err
	}
	if _, err := d.run("run", "-d", "--name", "srv", "--net", "datanet", "-p", "127.0.0.1:25201:5201", "busybox", "/bin/busybox", "sleep", "36000"); err != nil {
		return r, err
	}
	if _, err := d.run("run", "-d", "--name", "peer", "--net", "datanet", "busybox", "/bin/busybox", "sleep", "36000"); err != nil {
		return r, err
	}
	srv, err := d.pidOf("srv")
	if err != nil {
		return r, err
	}
	peer, err := d.pidOf("peer")
	if err != nil {
		return r, err
	}
	ip, err := d.ipOf("srv", "datanet")
	if err != nil {
		return r, err
	}
	return dataPaths(inPid(srv), d.h.Cmd, inPid(peer), ip, 25201, seconds, also)
}

func (d *docker) Scale(n int) (ScaleResult, error) {
	return scaleDaemon(n, daemonOps{
		list:  func() (string, error) { return d.run("ps", "-q") },
		fill:  func(more int) error { return d.runContainers("s", more, "bridge") },
		pid:   func() (int, error) { return d.pid, nil },
		stop:  func(int) error { return d.stopDaemon() },
		start: d.startDaemon,
	})
}

// stopDaemon stops dockerd (SIGTERM; live-restore keeps the containers) and waits for it.
func (d *docker) stopDaemon() error {
	if d.pid == 0 {
		return nil
	}
	if err := syscall.Kill(d.pid, syscall.SIGTERM); err != nil {
		return err
	}
	if !waitGone(d.pid, 60*time.Second) {
		_ = syscall.Kill(d.pid, syscall.SIGKILL)
		return errors.New("dockerd did not stop within 60 s")
	}
	d.pid = 0
	return nil
}

// dockerCgroup is the cgroup parent of the run's containers: Stop finds them all there.
const dockerCgroup = "cnetcmp-docker"

// Stop stops dockerd, kills what it leaves (containerd and its shims run from the private
// exec root; the containers are in dockerCgroup), unmounts what it mounted, removes the
// cgroups and deletes the namespace. `docker rm -f` of a thousand containers would take
// minutes for nothing: their state is in the private directories, removed with the run's.
func (d *docker) Stop() error {
	if d.env == nil {
		return nil
	}
	var errs []error
	if err := d.stopDaemon(); err != nil {
		errs = append(errs, err)
	}
	killUnder(d.dir)
	if err := killCgroup(dockerCgroup); err != nil {
		errs = append(errs, err)
	}
	unmountUnder(d.dir)
	if err := removeCgroups(dockerCgroup); err != nil {
		errs = append(errs, err)
	}
	if err := d.h.Close(); err != nil {
		errs = append(errs, err)
	}
	d.h, d.env = nil, nil
	return errors.Join(errs...)
}
