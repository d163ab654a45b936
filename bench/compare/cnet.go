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

// cnetSys is cnet's daemon in a throwaway host of its own, made as the integration tests make
// theirs: new network, mount and PID namespaces whose PID 1 is a sleep (killing it ends every
// process the host started), /sys remounted for the namespace and the host's resolv.conf
// pointing at 127.0.0.1, so nothing is ever forwarded off the machine.
//
// Attach times the Engine API call (POST /networks/{id}/connect) on the daemon's socket: that
// is cnet's interface for the rest of the ecosystem. AttachCLI times `cnet network connect`,
// for the comparison of one command with another.
type cnetSys struct {
	env    *Env
	dir    string
	sock   string
	host   *exec.Cmd // unshare; its forked child is the host's PID 1
	init   int
	daemon *exec.Cmd // nsenter; its child is the daemon
	names  []string
}

func newCnet() *cnetSys { return &cnetSys{} }

func (c *cnetSys) Name() string { return "cnet" }

func (c *cnetSys) Start(env *Env) error {
	c.env = env
	var err error
	if c.dir, err = env.Dir("cnet"); err != nil {
		return err
	}
	c.sock = filepath.Join(c.dir, "cnet.sock")
	resolv := filepath.Join(c.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return err
	}
	c.host = exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
		"sh", "-c", "mount -t sysfs sysfs /sys && mount -t cgroup2 cgroup2 /sys/fs/cgroup && mount --bind "+resolv+" /etc/resolv.conf && ip link set lo up && exec sleep infinity")
	c.host.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.host.Start(); err != nil {
		return fmt.Errorf("starting cnet's host namespace: %w", err)
	}
	if c.init, err = childNamed(c.host.Process.Pid, "sleep", 10*time.Second); err != nil {
		return fmt.Errorf("cnet's host namespace: %w", err)
	}
	return c.startDaemon()
}

// childNamed waits for the child of pid whose command is name.
func childNamed(pid int, name string, limit time.Duration) (int, error) {
	children := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(children)
		for _, f := range strings.Fields(string(data)) {
			child, _ := strconv.Atoi(f)
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == name {
				return child, nil
			}
		}
	}
	return 0, fmt.Errorf("no %s process under %d after %v", name, pid, limit)
}

// hostCmd runs a command inside cnet's host (network, mount and PID namespaces).
func (c *cnetSys) hostCmd(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.init), "-n", "-m", "-p", "--", name}, args...)...)
}

func (c *cnetSys) startDaemon() error {
	logf, err := os.OpenFile(filepath.Join(c.dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	c.daemon = c.hostCmd(c.env.Cnet, "daemon", "--data-root", filepath.Join(c.dir, "data"),
		"--exec-root", filepath.Join(c.dir, "exec"), "-H", "unix://"+c.sock)
	c.daemon.Stdout, c.daemon.Stderr = logf, logf
	if err := c.daemon.Start(); err != nil {
		return fmt.Errorf("starting cnet's daemon: %w", err)
	}
	go func(d *exec.Cmd) { _ = d.Wait() }(c.daemon)
	for range 600 {
		if _, err := c.run("network", "ls", "-q"); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cnet's daemon did not answer within 30 s: see %s/daemon.log", c.dir)
}

// daemonPid is the daemon's PID as this process sees it (nsenter forks it for the PID namespace).
func (c *cnetSys) daemonPid() (int, error) {
	return childNamed(c.daemon.Process.Pid, filepath.Base(c.env.Cnet), 5*time.Second)
}

func (c *cnetSys) cmd(args ...string) *exec.Cmd {
	return exec.Command(c.env.Cnet, append([]string{"-H", "unix://" + c.sock}, args...)...)
}

func (c *cnetSys) run(args ...string) (string, error) { return runCmd(c.cmd(args...)) }

func (c *cnetSys) runContainers(prefix string, n int, net string, extra ...string) error {
	return parallel(n, 4, func(i int) error {
		args := append([]string{"run", "--rootfs", "/", "-d", "--name", fmt.Sprintf("%s%d", prefix, i), "--net", net}, extra...)
		_, err := c.run(append(args, "busybox", "sleep", "36000")...)
		return err
	})
}

// ctrCmd runs a command in a container's network namespace, reached through the host's mount
// namespace where cnet bind-mounts it.
func (c *cnetSys) ctrCmd(name string) (func(string, ...string) *exec.Cmd, error) {
	key, err := c.run("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name)
	if err != nil {
		return nil, err
	}
	path := fmt.Sprintf("/proc/%d/root%s", c.init, strings.TrimSpace(key))
	return func(name string, args ...string) *exec.Cmd {
		return exec.Command("nsenter", append([]string{"--net=" + path, "--", name}, args...)...)
	}, nil
}

func (c *cnetSys) PrepareAttach(n int) error {
	if _, err := c.run("network", "create", "attachnet"); err != nil {
		return err
	}
	c.names = make([]string, n)
	for i := range c.names {
		c.names[i] = fmt.Sprintf("a%d", i)
	}
	return c.runContainers("a", n, "bridge")
}

func (c *cnetSys) Attach(i int) (time.Duration, error) {
	return apiConnect(c.sock, "attachnet", c.names[i], true)
}

func (c *cnetSys) Detach(i int) (time.Duration, error) {
	return apiConnect(c.sock, "attachnet", c.names[i], false)
}

// AttachCLI and DetachCLI time `cnet network connect|disconnect`, client start included.
func (c *cnetSys) AttachCLI(i int) (time.Duration, error) {
	return timed(c.cmd("network", "connect", "attachnet", c.names[i]))
}

func (c *cnetSys) DetachCLI(i int) (time.Duration, error) {
	return timed(c.cmd("network", "disconnect", "attachnet", c.names[i]))
}

func (c *cnetSys) PublishRange(first, count int) (PublishResult, error) {
	last := first + count - 1
	spec := fmt.Sprintf("%d-%d:%d-%d", first, last, first, last)
	pid, err := c.daemonPid()
	if err != nil {
		return PublishResult{}, err
	}
	return measurePublish(c.hostCmd, pid, func() (time.Duration, error) {
		return timed(c.cmd("run", "--rootfs", "/", "-d", "--name", "noports", "busybox", "sleep", "36000"))
	}, func() (time.Duration, error) {
		return timed(c.cmd("run", "--rootfs", "/", "-d", "--name", "ports", "-p", spec, "busybox", "sleep", "36000"))
	})
}

func (c *cnetSys) DNS(names int, cfg DNSConfig) (DNSResult, error) {
	if _, err := c.run("network", "create", "dnsnet"); err != nil {
		return DNSResult{}, err
	}
	if err := c.runContainers("n", names, "dnsnet"); err != nil {
		return DNSResult{}, err
	}
	if _, err := c.run("run", "--rootfs", "/", "-d", "--name", "client", "--net", "dnsnet", "busybox", "sleep", "36000"); err != nil {
		return DNSResult{}, err
	}
	client, err := c.ctrCmd("client")
	if err != nil {
		return DNSResult{}, err
	}
	return runDNSPerf(c.env, client, "127.0.0.11", "n", names, cfg)
}

func (c *cnetSys) DataPath(seconds int, also []path) (DataPathResult, error) {
	var r DataPathResult
	if _, err := c.run("network", "create", "datanet"); err != nil {
		return r, err
	}
	// No ProxyProcs to count: cnet's userland proxy, when it is on, lives in the daemon.
	if _, err := c.run("run", "--rootfs", "/", "-d", "--name", "srv", "--net", "datanet", "-p", "127.0.0.1:25201:5201", "busybox", "sleep", "36000"); err != nil {
		return r, err
	}
	if _, err := c.run("run", "--rootfs", "/", "-d", "--name", "peer", "--net", "datanet", "busybox", "sleep", "36000"); err != nil {
		return r, err
	}
	ip, err := c.run("inspect", "-f", "{{.NetworkSettings.Networks.datanet.IPAddress}}", "srv")
	if err != nil {
		return r, err
	}
	srv, err := c.ctrCmd("srv")
	if err != nil {
		return r, err
	}
	peer, err := c.ctrCmd("peer")
	if err != nil {
		return r, err
	}
	return dataPaths(srv, c.hostCmd, peer, strings.TrimSpace(ip), 25201, seconds, also)
}

func (c *cnetSys) Scale(n int) (ScaleResult, error) {
	return scaleDaemon(n, daemonOps{
		list: func() (string, error) { return c.run("ps", "-q") },
		fill: func(more int) error { return c.runContainers("s", more, "bridge") },
		pid:  c.daemonPid,
		stop: func(pid int) error {
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				return err
			}
			if !waitGone(pid, 60*time.Second) {
				return errors.New("cnet's daemon did not stop within 60 s")
			}
			return nil
		},
		start: c.startDaemon,
	})
}

// Stop kills the host's PID 1, which ends every process in it (daemon, shims, containers),
// and removes the daemon's directories; the namespaces go with their last process.
func (c *cnetSys) Stop() error {
	if c.host == nil || c.host.Process == nil {
		return nil
	}
	_ = c.host.Process.Kill()
	if c.init != 0 {
		_ = syscall.Kill(c.init, syscall.SIGKILL)
		waitGone(c.init, 10*time.Second)
	}
	_ = c.host.Wait()
	c.host = nil
	return nil
}
