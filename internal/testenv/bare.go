package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BareHost is a throwaway machine without a cnet daemon: a network namespace with its own
// mount and PID namespaces (its /sys matching its network) and a private directory. A Host is
// a BareHost with a daemon; multi-host tests also use bare ones for what is not a cnet host (the
// underlay's router, the etcd members), made the same way so that they die the same way:
// killing PID 1 of the host's PID namespace ends every process it ran, and with the last of
// them its network namespace and every link in it.
type BareHost struct {
	t       testing.TB
	Dir     string // private directory, removed at cleanup
	unshare *exec.Cmd
	pid     int // PID (in the test's PID namespace) of the host's init: the target of nsenter
	killMu  sync.Mutex
	killed  bool
}

// NewBareHost starts a bare host; it is removed when the test ends. prefix names its private
// directory (kept short: a unix socket's path must fit in 108 bytes).
func NewBareHost(t testing.TB, prefix string) *BareHost {
	t.Helper()
	RequireRoot(t)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	b := &BareHost{t: t, Dir: dir}
	// The host's own resolv.conf points at 127.0.0.1, where a test may run a stub upstream:
	// nothing a test resolves may reach the machine's real resolvers.
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	// A fresh sysfs for the new network namespace hides the machine's cgroup mounts; the
	// host gets the cgroup v2 hierarchy back, as real hosts have it (the daemon attaches its
	// connect() translation there).
	// --fork makes the shell PID 1 of a new PID namespace: killing it kills every process the
	// host ever started (daemon, shims, containers), however a test ended. --kill-child and
	// Pdeathsig chain that kill to the test binary's own death (a timeout, a ^C).
	b.unshare = exec.Command("unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
		"sh", "-c", "mount -t sysfs sysfs /sys && mount -t cgroup2 cgroup2 /sys/fs/cgroup && mount --bind "+resolv+" /etc/resolv.conf && ip link set lo up && exec sleep infinity")
	b.unshare.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// What the setup prints (a mount that failed, say) is kept for findInit's error.
	if setupLog, err := os.Create(filepath.Join(dir, "setup.log")); err == nil {
		b.unshare.Stdout, b.unshare.Stderr = setupLog, setupLog
		defer setupLog.Close()
	}
	if err := b.unshare.Start(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting the host namespace: %v", err)
	}
	t.Cleanup(b.teardown)
	if err := b.findInit(); err != nil {
		t.Fatal(err)
	}
	return b
}

// findInit waits for the forked PID 1 and for its /sys remount. A fresh-clone CI run once
// saw a host not come up within 10 s, with no word of why (TestCompose, on a loaded 2-core
// machine): the wait is longer now, and a failure says what the setup printed.
func (b *BareHost) findInit() error {
	pid, err := childPid(b.unshare.Process.Pid, "sleep", 30*time.Second)
	if err != nil {
		out, _ := os.ReadFile(filepath.Join(b.Dir, "setup.log"))
		return fmt.Errorf("the host namespace did not come up: %w (its setup printed %q)", err, out)
	}
	b.pid = pid
	return nil
}

// childPid waits for the process pid to have a child (named comm, if comm is not empty) and
// returns its PID. nsenter -p and unshare --fork fork the command into the new PID namespace
// rather than exec it: signals meant for the command go to this child.
func childPid(pid int, comm string, wait time.Duration) (int, error) {
	children := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(children)
		for _, f := range strings.Fields(string(data)) {
			c, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			name, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c))
			if comm == "" || strings.TrimSpace(string(name)) == comm {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("process %d has no child %q after %s", pid, comm, wait)
		}
	}
}

// Pid returns the PID of the host's init as the test process sees it.
func (b *BareHost) Pid() int { return b.pid }

// Path returns how the test process reaches path as the host sees it (through the host's
// mount namespace, where cnet's namespace files are mounted).
func (b *BareHost) Path(path string) string { return fmt.Sprintf("/proc/%d/root%s", b.pid, path) }

// NetNS returns the path of the host's network namespace, for tests that open sockets in it.
func (b *BareHost) NetNS() string { return fmt.Sprintf("/proc/%d/ns/net", b.pid) }

// Cmd returns a command that runs inside the host's namespaces.
func (b *BareHost) Cmd(name string, args ...string) *exec.Cmd {
	return b.CmdContext(context.Background(), name, args...)
}

// CmdContext is Cmd ended by ctx.
func (b *BareHost) CmdContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(b.pid), "-n", "-m", "-p", name}, args...)...)
}

// Run runs a command in the host's namespaces (ip, ping, ...) and returns combined output.
func (b *BareHost) Run(name string, args ...string) (string, error) {
	out, err := b.Cmd(name, args...).CombinedOutput()
	return string(out), err
}

// RunTimeout is Run killed after d: for probes that may hang (a peer that drops packets).
func (b *BareHost) RunTimeout(d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := b.CmdContext(ctx, name, args...)
	// nsenter forks the command into the host's PID namespace: the whole process group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("%s %s: no answer within %s", name, strings.Join(args, " "), d)
	}
	return string(out), err
}

// MustRun is Run that fails the test on error.
func (b *BareHost) MustRun(name string, args ...string) string {
	b.t.Helper()
	out, err := b.Run(name, args...)
	if err != nil {
		b.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runNet runs a command in the host's network namespace only, keeping the machine's mount
// namespace and so its /proc: `ip link ... netns PID` then names other hosts by the PIDs the
// test process sees. (The host's own /proc shows only its own PID namespace.)
func (b *BareHost) runNet(name string, args ...string) error {
	out, err := exec.Command("nsenter", append([]string{"--net=" + b.NetNS(), name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// Dead reports whether the host was killed (Kill) or torn down.
func (b *BareHost) Dead() bool {
	b.killMu.Lock()
	defer b.killMu.Unlock()
	return b.killed
}

// Kill kills the host's PID namespace, and with it every process it ran, as if the machine
// died; its network namespace goes with the last of them. Its directory stays until cleanup.
func (b *BareHost) Kill() {
	b.killMu.Lock()
	defer b.killMu.Unlock()
	if b.killed {
		return
	}
	b.killed = true
	if b.unshare != nil && b.unshare.Process != nil {
		if b.pid > 0 {
			_ = syscall.Kill(b.pid, syscall.SIGKILL)
		}
		_ = b.unshare.Process.Kill()
		_ = b.unshare.Wait()
	}
}

// teardown kills the host (if a test did not) and removes its private directory. It runs even
// when the test failed half-way.
func (b *BareHost) teardown() {
	b.Kill()
	if b.Dir != "" {
		if err := os.RemoveAll(b.Dir); err != nil {
			b.t.Errorf("removing the host's root %s: %v", b.Dir, err)
		}
	}
}
