package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// dockerCallTimeout bounds every docker CLI call: far above what one takes (a `docker run`
// takes about a second).
const dockerCallTimeout = 60 * time.Second

// dockerdStartTimeout bounds dockerd's start, its own containerd's included (about a second).
const dockerdStartTimeout = 60 * time.Second

// dockerdStopTimeout bounds a SIGTERM'd dockerd's exit: it gives running containers 15 s
// (--shutdown-timeout) and then stops its containerd.
const dockerdStopTimeout = 40 * time.Second

// dockerBusybox is the image loadBusybox loads.
const dockerBusybox = "cnet.test/busybox:latest"

// dockerd is a private Docker daemon (Debian's docker.io 20.10) in a test host, driven by the
// docker CLI on PATH. Everything it writes is under the host's directory (dir: data root, exec
// root with the containerd it starts and supervises, pid file, configuration, trust key, log;
// its API socket is h.Dir/docker.sock) or on tmpfs mounted over /run and /opt in the host's
// mount namespace (its containerd's shim sockets go to /run/containerd/s and its "opt" plugin
// makes /opt/containerd, whatever their configuration). /run/docker/plugins, where dockerd
// looks for network plugins' sockets, is thus the host's own. Its iptables chains are in the
// host's network namespace. Its containers' cgroups are under the test's own cgroup (see
// cgroup) of the unified hierarchy the host mounts. The CLI's configuration directory is under
// dir: nothing of the machine's ~/.docker is read or written.
//
// One per host, and not in a host with newContainerd or newPodman (they mount over /run too).
//
// Cleanup (registered by newDockerd) starts a stopped or killed dockerd again, removes every
// container with `docker rm -f`, stops dockerd, kills whatever is left of its containerd,
// shims and containers, unmounts what it left mounted and /run, and removes its cgroups; the
// host's own cleanup check then finds no link, namespace file or mount of Docker's.
type dockerd struct {
	t      testing.TB
	h      *testenv.Host
	dir    string   // h.Dir/docker
	sock   string   // h.Dir/docker.sock
	cgroup string   // --cgroup-parent, removed at cleanup: "/" + the host directory's name + "-docker"
	args   []string // dockerd's command line after "dockerd"

	mu     sync.Mutex
	cmd    *exec.Cmd     // nsenter, whose child is dockerd; nil when not running
	exited chan struct{} // closed when cmd has been reaped
	calls  []string      // every CLI call and its output, shown when the test fails
}

// newDockerd starts a private dockerd in h with extraArgs after the harness's own flags (a
// later flag wins: --iptables=false; or more: --live-restore...; not other roots). It fails the
// test if dockerd does not answer within a minute, and skips it where Docker is not installed.
func newDockerd(t testing.TB, h *testenv.Host, extraArgs ...string) *dockerd {
	t.Helper()
	// iptables: dockerd (--iptables, the default) makes its chains in the host's own network
	// namespace. containerd, runc: dockerd starts its own containerd, which runs runc.
	for _, tool := range []string{"dockerd", "docker", "containerd", "containerd-shim-runc-v2", "runc", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the dockerd test needs %s (Debian's docker.io): %v", tool, err)
		}
	}
	d := &dockerd{t: t, h: h, dir: filepath.Join(h.Dir, "docker"), sock: filepath.Join(h.Dir, "docker.sock"),
		cgroup: "/" + filepath.Base(h.Dir) + "-docker"}
	for _, sub := range []string{"data", "exec", "config"} {
		if err := os.MkdirAll(filepath.Join(d.dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The test's own configuration file: the machine's /etc/docker/daemon.json is not read.
	// dockerd 20.10 makes a libtrust key (its ID), by default /etc/docker/key.json; its path
	// has no command-line flag.
	conf := `{"deprecated-key-path": "` + filepath.Join(d.dir, "key.json") + `"}` + "\n"
	if err := os.WriteFile(filepath.Join(d.dir, "daemon.json"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.args = append([]string{
		"--host", "unix://" + d.sock,
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"--config-file", filepath.Join(d.dir, "daemon.json"),
		// No docker0: the tests' containers go on cnet's networks (or none).
		"--bridge", "none",
		"--userland-proxy=false",
		// vfs needs no mount per layer and works on any filesystem h.Dir is on.
		"--storage-driver", "vfs",
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--cgroup-parent", d.cgroup,
		"--debug",
	}, extraArgs...)
	// /run on tmpfs: containerd's shims put their sockets in /run/containerd/s whatever the
	// exec root, and dockerd uses the machine's containerd instead of starting its own if
	// /run/containerd/containerd.sock exists. /run/docker/plugins is where dockerd looks for
	// network plugins' sockets. /opt on tmpfs: containerd's "opt" plugin makes /opt/containerd
	// (dockerd gives its containerd no way to turn it off).
	h.MustRun("sh", "-c", "mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p /run/docker/plugins && mount -t tmpfs -o mode=755 tmpfs /opt")
	t.Cleanup(d.cleanup)
	d.start()
	return d
}

// start starts dockerd (again) and waits until it answers; it fails the test if it does not,
// and the cleanup then shows dockerd's log.
func (d *dockerd) start() {
	d.t.Helper()
	if err := d.startErr(); err != nil {
		d.t.Fatal(err)
	}
}

func (d *dockerd) startErr() error {
	d.mu.Lock()
	running := d.cmd != nil
	d.mu.Unlock()
	if running {
		return fmt.Errorf("starting dockerd: it is running")
	}
	// A containerd that died with its dockerd stays a zombie in the host, whose init does
	// not reap: dockerd would take it for alive and wait for its socket in vain.
	if pid := d.containerdPid(); pid > 0 && !d.hostAlive(pid) {
		_ = os.Remove(d.containerdPidfile())
	}
	logf, err := os.OpenFile(d.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s dockerd %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(d.args, " "))
	// nsenter -p forks dockerd into the host's PID namespace: dockerd is nsenter's child.
	cmd := d.h.Cmd("dockerd", d.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting dockerd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	d.mu.Lock()
	d.cmd, d.exited = cmd, exited
	d.mu.Unlock()

	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}}}
	defer client.CloseIdleConnections()
	for deadline := time.Now().Add(dockerdStartTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			d.mu.Lock()
			d.cmd = nil
			d.mu.Unlock()
			return fmt.Errorf("dockerd exited at start (%v): see its log", cmd.ProcessState)
		default:
		}
		if resp, err := client.Get("http://docker/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("dockerd did not answer on %s within %s: see its log", d.sock, dockerdStartTimeout)
}

// pid returns dockerd's PID as the test process sees it (0 if it is not running).
func (d *dockerd) pid() int {
	d.mu.Lock()
	cmd := d.cmd
	d.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			return pid
		}
	}
	return 0
}

// stop stops dockerd with SIGTERM, as an administrator would, and waits for it to be gone: it
// stops its containers (unless --live-restore) and its containerd first.
func (d *dockerd) stop() {
	d.t.Helper()
	if err := d.signal(syscall.SIGTERM, dockerdStopTimeout); err != nil {
		d.t.Error(err)
	}
}

// kill kills dockerd with SIGKILL, as a crash would, and waits for it to be gone. The
// containerd it started dies with it (dockerd starts it with a parent-death signal, SIGKILL);
// the shims and containers go on running, and the next start's containerd finds them.
func (d *dockerd) kill() {
	d.t.Helper()
	if err := d.signal(syscall.SIGKILL, 10*time.Second); err != nil {
		d.t.Error(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pid := d.containerdPid(); pid == 0 || !d.hostAlive(pid) {
			return
		}
	}
}

// containerdPidfile is where dockerd keeps the PID of the containerd it started.
func (d *dockerd) containerdPidfile() string {
	return filepath.Join(d.dir, "exec", "containerd", "containerd.pid")
}

// containerdPid returns the PID, in the host's PID namespace, of the containerd dockerd
// started last (0 if none).
func (d *dockerd) containerdPid() int {
	data, err := os.ReadFile(d.containerdPidfile())
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// hostAlive reports whether the process hostPid of the host's PID namespace exists and is
// not a zombie.
func (d *dockerd) hostAlive(hostPid int) bool {
	hostNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", d.h.Pid()))
	if err != nil {
		return false
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || ns != hostNS {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		var nspid []string
		zombie := false
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
				nspid = f[1:]
			} else if len(f) > 1 && f[0] == "State:" {
				zombie = f[1] == "Z" || f[1] == "X"
			}
		}
		if len(nspid) > 0 && nspid[len(nspid)-1] == strconv.Itoa(hostPid) {
			return !zombie
		}
	}
	return false
}

func (d *dockerd) signal(sig syscall.Signal, wait time.Duration) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	defer func() {
		d.mu.Lock()
		d.cmd = nil
		d.mu.Unlock()
	}()
	if pid := d.pid(); pid > 0 {
		_ = syscall.Kill(pid, sig)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(wait):
	}
	if pid := d.pid(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("dockerd did not exit within %s of %v: killed", wait, sig)
}

// run runs `docker ARGS...` against the test's dockerd, in the host, and returns its standard
// output; the error has its standard error. It is killed, with whatever it started, after
// dockerCallTimeout.
func (d *dockerd) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCallTimeout)
	defer cancel()
	cmd := d.h.CmdContext(ctx, "docker", args...)
	env := []string{"DOCKER_HOST=unix://" + d.sock, "DOCKER_CONFIG=" + filepath.Join(d.dir, "config")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	// nsenter forks the CLI into the host's PID namespace: the whole process group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("no answer within %s", dockerCallTimeout)
	}
	if err != nil {
		err = fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	d.mu.Lock()
	d.calls = append(d.calls, fmt.Sprintf("$ docker %s\n%s%s[%v, %s]", strings.Join(args, " "), stdout.String(), stderr.String(), err, time.Since(start).Round(time.Millisecond)))
	d.mu.Unlock()
	return stdout.String(), err
}

// mustRun is run that fails the test on error; it returns the output, trimmed.
func (d *dockerd) mustRun(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// loadBusybox loads the busybox test image (busyboxImageTar) with `docker load` and returns
// its reference, dockerBusybox.
func (d *dockerd) loadBusybox() string {
	d.t.Helper()
	path := filepath.Join(d.dir, "busybox.tar")
	busyboxImageTar(d.t, path, dockerBusybox)
	d.mustRun("load", "-i", path)
	d.mustRun("image", "inspect", "-f", "{{.Id}}", dockerBusybox)
	return dockerBusybox
}

func (d *dockerd) logPath() string { return filepath.Join(d.dir, "dockerd.log") }

// log returns dockerd's log (its containerd's included), its last 256 KiB at most.
func (d *dockerd) log() string {
	data, _ := os.ReadFile(d.logPath())
	const max = 256 << 10
	if len(data) > max {
		return "[...]\n" + string(data[len(data)-max:])
	}
	return string(data)
}

// TestDockerdHarness: a private dockerd starts in a test host, loads the busybox test image,
// runs a container without a network and is removed without leaving anything behind.
func TestDockerdHarness(t *testing.T) {
	h := testenv.NewHost(t)
	d := newDockerd(t, h)
	img := d.loadBusybox()
	if out := d.mustRun("run", "--rm", "--network", "none", img, "busybox", "echo", "hello"); out != "hello" {
		t.Errorf("docker run echo hello printed %q", out)
	}
	if out := d.mustRun("ps", "-aq"); out != "" {
		t.Errorf("docker run --rm left a container: %q", out)
	}
}
