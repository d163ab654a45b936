package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// podmanNS names both the throwaway host network namespace Podman runs in and the cgroup parent
// of its containers: the name is the benchmark's, so whatever carries it is ours to remove.
const podmanNS = "cnetcmp-podman"

// podmanIperfPort is the host port DataPath publishes iperf3's 5201 on; it is clear of the
// range main gives PublishRange (20000 and up).
const podmanIperfPort = 15201

// podman is Podman 4.3 run as root with netavark 1.4 and aardvark-dns 1.4, driven the way its
// users drive it: one podman CLI process per command. There is no daemon, so it is no scaler,
// and every timing is a CLI command's wall time, fork to exit.
//
// Rootful Podman keeps state in fixed places that no flag moves: netavark's IPAM database and
// aardvark-dns's configuration in /run/containers/networks, network namespaces in /run/netns,
// runc's state in /run/runc, its locks in /dev/shm/libpod_lock, and the image blob cache in
// /var/lib/containers/cache. So besides the private --root, --runroot, --tmpdir,
// --network-config-dir and configuration files, every podman command also runs in a private
// mount namespace (held open by a sleep made with unshare) that has tmpfs over /run, /dev/shm,
// /var/lib and /var/tmp: nothing of the machine's Podman is read or written, and what Podman
// mounts (overlay, netns bind mounts) is invisible outside and goes when that namespace does.
// The namespace's processes (conmon, aardvark-dns) are then known exactly: by their mount
// namespace, and by the cgroup parent podmanNS that all containers are put under.
type podman struct {
	dir    string     // private state: root, runroot, tmp, net, config files
	host   *netnsHost // the host network namespace
	holder *exec.Cmd  // the sleep holding the private mount namespace
	mntNS  string     // its /proc/PID/ns/mnt link, "mnt:[inode]", once its tmpfs are mounted
	env    *Env
}

func newPodman() *podman { return &podman{} }

func (p *podman) Name() string { return "Podman" }

// Start makes the namespaces and the private configuration and imports the image.
func (p *podman) Start(env *Env) error {
	dir, err := env.Dir("podman")
	if err != nil {
		return fmt.Errorf("podman's state directory: %w", err)
	}
	p.dir, p.env = dir, env
	for _, d := range []string{"root", "runroot", "tmp", "net"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		// The same settings as the global flags, for what podman starts without them.
		"containers.conf": fmt.Sprintf("[network]\nnetwork_backend = \"netavark\"\nnetwork_config_dir = %q\n"+
			"[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\ntmp_dir = %q\nimage_copy_tmp_dir = %q\n",
			filepath.Join(dir, "net"), filepath.Join(dir, "tmp"), filepath.Join(dir, "tmp")),
		"storage.conf": fmt.Sprintf("[storage]\ndriver = \"overlay\"\ngraphroot = %q\nrunroot = %q\n",
			filepath.Join(dir, "root"), filepath.Join(dir, "runroot")),
		"registries.conf": "unqualified-search-registries = []\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("podman"); err != nil {
		return fmt.Errorf("podman is missing (apt-get install podman): %w", err)
	}
	if p.host, err = newNetnsHost(podmanNS); err != nil {
		return fmt.Errorf("making namespace %s (left over from a run that was killed? then ip netns del %s): %w",
			podmanNS, podmanNS, err)
	}
	if err := p.startHolder(); err != nil {
		return err
	}
	img, err := filepath.Abs(env.Image) // podman's working directory is the mount namespace's /
	if err != nil {
		return err
	}
	if _, err := p.run("import", img, "busybox"); err != nil {
		return fmt.Errorf("importing the busybox image: %w", err)
	}
	return nil
}

// startHolder makes the private mount namespace and the tmpfs mounts in it (see podman).
func (p *podman) startHolder() error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	p.holder = exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "infinity")
	if err := p.holder.Start(); err != nil {
		p.holder = nil
		return fmt.Errorf("unshare --mount: %w", err)
	}
	link := fmt.Sprintf("/proc/%d/ns/mnt", p.holder.Process.Pid)
	ns := ""
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ns, err = os.Readlink(link); err == nil && ns != self {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("unshare --mount made no mount namespace in 5 s (is util-linux's unshare installed?)")
		}
	}
	script := ""
	for _, d := range []string{"/run", "/dev/shm", "/var/lib", "/var/tmp"} {
		script += fmt.Sprintf("mount -t tmpfs -o mode=0755 %s %s && ", podmanNS, d)
	}
	if _, err := run("nsenter", "--mount="+link, "--", "sh", "-c", script+"true"); err != nil {
		return fmt.Errorf("mounting podman's private /run, /dev/shm, /var/lib, /var/tmp: %w", err)
	}
	p.mntNS = ns // from here on podman may run: it can no longer reach the machine's state
	return nil
}

// cmd is a podman command in both namespaces, with the private state: one nsenter enters both
// (rather than the netns host's Cmd around a second nsenter), so a timed command costs what a
// user's does plus one exec.
func (p *podman) cmd(args ...string) *exec.Cmd {
	d := func(name string) string { return filepath.Join(p.dir, name) }
	global := []string{"--root", d("root"), "--runroot", d("runroot"), "--storage-driver", "overlay",
		"--tmpdir", d("tmp"), "--network-config-dir", d("net"), "--network-backend", "netavark",
		"--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	ns := []string{"--net=" + p.host.Path(), fmt.Sprintf("--mount=/proc/%d/ns/mnt", p.holder.Process.Pid), "--", "podman"}
	c := exec.Command("nsenter", append(append(ns, global...), args...)...)
	c.Env = append(os.Environ(), "CONTAINERS_CONF="+d("containers.conf"), "CONTAINERS_STORAGE_CONF="+d("storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+d("registries.conf"), "TMPDIR="+d("tmp"))
	return c
}

func (p *podman) run(args ...string) (string, error) { return runCmd(p.cmd(args...)) }

// runCmd is `podman run -d` of a busybox that sleeps, with opts before the image. The ulimits
// are needed on these VMs: podman's default nofile (1048576) is above the hard limit a process
// may have here (20000), and runc then fails with "error setting rlimit type 7: operation not
// permitted". The cgroup parent keeps the containers' cgroups together (else podman makes
// libpod_parent in every hierarchy) under a name that is ours to remove.
func (p *podman) runCmd(name string, opts ...string) *exec.Cmd {
	args := []string{"run", "-d", "--name", name, "--cgroup-parent", "/" + podmanNS,
		"--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"}
	args = append(append(args, opts...), "busybox", "/bin/busybox", "sleep", "86400")
	return p.cmd(args...)
}

// runContainers starts prefix0..prefix(n-1) on network net, four podman commands at a time as
// the other systems do (podman's locks make that safe): making them is not what is measured.
func (p *podman) runContainers(prefix string, n int, net string) error {
	start := time.Now()
	err := parallel(n, 4, func(i int) error {
		if _, err := runCmd(p.runCmd(fmt.Sprintf("%s%d", prefix, i), "--network", net)); err != nil {
			return fmt.Errorf("starting container %s%d of %d: %w", prefix, i, n, err)
		}
		return nil
	})
	logf("podman: %d containers on %s in %v", n, net, time.Since(start).Round(time.Millisecond))
	return err
}

func (p *podman) pidOf(name string) (int, error) {
	out, err := p.run("inspect", "-f", "{{.State.Pid}}", name)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("podman inspect: container %s has no process (%q)", name, strings.TrimSpace(out))
	}
	return pid, nil
}

func (p *podman) ipOf(name, net string) (string, error) {
	out, err := p.run("inspect", "-f", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", net), name)
	if ip := strings.TrimSpace(out); err == nil && ip != "" && ip != "<no value>" {
		return ip, nil
	}
	return "", fmt.Errorf("podman inspect: no address of %s on %s: %w", name, net, err)
}

// PrepareAttach makes network attachnet, and n containers c0..c(n-1) on a network of their own.
// Both are /16s: a /24, podman's default, holds 253 containers.
func (p *podman) PrepareAttach(n int) error {
	for _, nw := range [][2]string{{"attachnet", "10.91.0.0/16"}, {"attachhome", "10.92.0.0/16"}} {
		if _, err := p.run("network", "create", "--subnet", nw[1], nw[0]); err != nil {
			return fmt.Errorf("creating network %s: %w", nw[0], err)
		}
	}
	return p.runContainers("c", n, "attachhome")
}

// Attach times `podman network connect attachnet cI`: podman finds the container, netavark
// (a process of its own) adds the veth and the address, and aardvark-dns is told the name.
func (p *podman) Attach(i int) (time.Duration, error) {
	return timed(p.cmd("network", "connect", "attachnet", fmt.Sprintf("c%d", i)))
}

// Detach times `podman network disconnect attachnet cI`.
func (p *podman) Detach(i int) (time.Duration, error) {
	return timed(p.cmd("network", "disconnect", "attachnet", fmt.Sprintf("c%d", i)))
}

// PublishRange times `podman run -d -p first-last:first-last` on the default network "podman",
// after a container without ports there (measurePublish: the processes of a container are not
// the ports' cost, and the bridge's own rules exist before, as Docker's default bridge's do).
// Netavark writes iptables(-nft) rules; with a range these are a few rules with a port range
// each, not one per port, and no userland proxy.
func (p *podman) PublishRange(first, count int) (PublishResult, error) {
	last := first + count - 1
	spec := fmt.Sprintf("%d-%d:%d-%d", first, last, first, last)
	return measurePublish(p.host.Cmd, 0, func() (time.Duration, error) {
		return timed(p.runCmd("pubbase"))
	}, func() (time.Duration, error) {
		return timed(p.runCmd(fmt.Sprintf("pub%d", first), "-p", spec))
	})
}

// DNS starts names containers dns0.. and dnsclient on a network of their own (aardvark-dns is
// on for every network podman creates), and runs dnsperf in the client's network namespace
// against the first nameserver of its resolv.conf: aardvark-dns on the network's gateway IP.
func (p *podman) DNS(names int, cfg DNSConfig) (DNSResult, error) {
	if names < 1 {
		return DNSResult{}, fmt.Errorf("DNS needs at least one name to query, not %d", names)
	}
	if _, err := p.run("network", "create", "--subnet", "10.93.0.0/16", "dnsnet"); err != nil {
		return DNSResult{}, fmt.Errorf("creating network dnsnet: %w", err)
	}
	if err := p.runContainers("dns", names, "dnsnet"); err != nil {
		return DNSResult{}, err
	}
	if _, err := runCmd(p.runCmd("dnsclient", "--network", "dnsnet")); err != nil {
		return DNSResult{}, fmt.Errorf("starting the DNS client: %w", err)
	}
	pid, err := p.pidOf("dnsclient")
	if err != nil {
		return DNSResult{}, err
	}
	resolv, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", pid))
	if err != nil {
		return DNSResult{}, fmt.Errorf("the DNS client's resolv.conf: %w", err)
	}
	server := ""
	for line := range strings.SplitSeq(string(resolv), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			server = f[1]
			break
		}
	}
	if server == "" {
		return DNSResult{}, fmt.Errorf("the DNS client's resolv.conf names no nameserver:\n%s", resolv)
	}
	return runDNSPerf(p.env, inPid(pid), server, "dns", names, cfg)
}

// DataPath measures iperf3 to a container, iperfsrv, that publishes 127.0.0.1:podmanIperfPort
// on its port 5201: from the host namespace to the published port (Published), to the
// container's address (Direct), and from a second container on the same network (CtrToCtr).
//
// Publishing on 127.0.0.1 works with rootful netavark: it DNATs in nat OUTPUT and sets
// route_localnet=1 on the network's bridge (only there), so no proxy process is involved
// (dataPaths counts them all the same).
func (p *podman) DataPath(seconds int, also []path) (DataPathResult, error) {
	var res DataPathResult
	if _, err := p.run("network", "create", "datanet"); err != nil {
		return res, fmt.Errorf("creating network datanet: %w", err)
	}
	publish := fmt.Sprintf("127.0.0.1:%d:5201", podmanIperfPort)
	if _, err := runCmd(p.runCmd("iperfsrv", "--network", "datanet", "-p", publish)); err != nil {
		return res, fmt.Errorf("starting the iperf3 server's container: %w", err)
	}
	if _, err := runCmd(p.runCmd("iperfcli", "--network", "datanet")); err != nil {
		return res, fmt.Errorf("starting the iperf3 client's container: %w", err)
	}
	srv, err := p.pidOf("iperfsrv")
	if err != nil {
		return res, err
	}
	cli, err := p.pidOf("iperfcli")
	if err != nil {
		return res, err
	}
	ip, err := p.ipOf("iperfsrv", "datanet")
	if err != nil {
		return res, err
	}
	return dataPaths(inPid(srv), p.host.Cmd, inPid(cli), ip, podmanIperfPort, seconds, also)
}

// Stop kills what podman left running in the private mount namespace or in the containers'
// cgroup parent (`podman rm -af` would undo netavark's and aardvark-dns's setup one container
// at a time, 45 s for 600, when all of it lives in namespaces about to go anyway), ends that
// namespace (with it go all podman's mounts and network namespace files), removes the
// cgroups, the host namespace and the state directory.
func (p *podman) Stop() error {
	var errs []error
	if p.host != nil { // the cgroup's name is ours only if this run made the namespace
		if err := p.killLeft(); err != nil {
			errs = append(errs, err)
		}
	}
	if p.holder != nil {
		_ = p.holder.Process.Kill()
		_ = p.holder.Wait()
		p.holder, p.mntNS = nil, ""
	}
	if p.host != nil {
		if err := removeCgroups(podmanNS); err != nil {
			errs = append(errs, err)
		}
		if err := p.host.Close(); err != nil {
			errs = append(errs, fmt.Errorf("deleting namespace %s: %w", podmanNS, err))
		}
		p.host = nil
	}
	if p.dir != "" {
		if err := os.RemoveAll(p.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing podman's state: %w", err))
		}
		p.dir = ""
	}
	return errors.Join(errs...)
}

// killLeft kills, by PID, the processes in the private mount namespace other than its holder
// (aardvark-dns, conmon, podman's cleanup commands) and those in the containers' cgroups,
// until none is left. Zombies are left to their parent (init reaps conmon and aardvark-dns).
func (p *podman) killLeft() error {
	for range 50 {
		all, err := pids()
		if err != nil {
			return err
		}
		left := 0
		for pid := range all {
			if p.holder != nil && pid == p.holder.Process.Pid {
				continue
			}
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if i := strings.LastIndexByte(string(stat), ')'); err != nil || i < 0 || strings.HasPrefix(string(stat[i+1:]), " Z") {
				continue
			}
			ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
			ours := p.mntNS != "" && ns == p.mntNS || inCgroup(pid, podmanNS)
			if proc, err := os.FindProcess(pid); ours && err == nil && proc.Kill() == nil {
				left++
			}
		}
		if left == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("podman's processes are still alive after 5 s of SIGKILL (see ps -eo pid,cgroup,args | grep %s)", podmanNS)
}
