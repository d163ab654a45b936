// Package testenv gives integration tests a throwaway "host": a network namespace with its own
// mount and PID namespaces (its /sys matching its network), in which a cnet daemon runs with
// private data and exec roots and socket. The machine's own namespaces are never touched;
// everything the host held, processes included, dies with its PID namespace at cleanup, after
// the test has been failed for any link, namespace or mount cnet left behind.
//
// Multi-host tests get a Cluster (NewCluster): several hosts on a routed underlay and a real
// etcd cluster, each member in a bare host (BareHost) of its own, all on one machine and all
// reachable only from namespaces the test made.
package testenv

import (
	"bytes"
	"context"
	"errors"
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

	"github.com/cnet-dev/cnet/internal/api"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// Main builds the cnet binary once for the test binary's run, runs the tests and removes it.
// Integration test packages call it from TestMain.
func Main(m *testing.M) int {
	defer func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	}()
	return m.Run()
}

// Binary returns the path of a cnet binary built from this module.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "cnet-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "cnet")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/cnet-dev/cnet/cmd/cnet").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building cnet: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// RequireRoot skips tests that need to make namespaces when not run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration test needs root (namespaces, links): run with sudo")
	}
}

// Host is one throwaway host running a cnet daemon: a BareHost (whose Cmd, Run, Path, NetNS
// it has) with private data and exec roots, socket and log.
type Host struct {
	*BareHost
	t      testing.TB
	Bin    string // the cnet binary; built at the first daemon start of a NoDaemon host
	Socket string
	daemon *exec.Cmd
	exited chan struct{} // closed when the daemon process has been reaped
	// daemonArgs are passed to every start of the daemon, before a call's own extra args:
	// a cluster host keeps its cluster flags across StartDaemon(), KillDaemon()+StartDaemon()
	// and the restart before the cleanup check.
	daemonArgs []string
	started    bool     // a daemon was started at least once: the cleanup check drives it
	ownLinks   []string // links the test made in the host (an underlay): not leaks
	logMu      sync.Mutex
	logs       []string // every CLI call and its output, shown when the test fails
	// Underlay is the host's address on a multi-host underlay (NewCluster), "" otherwise.
	Underlay string
	// CallTimeout bounds every CLI and API call the harness makes: a call still running then
	// is killed, the daemon's goroutines are dumped into the test's failure, and the call
	// fails, so a hang shows where it hangs within a minute instead of stalling CI.
	CallTimeout time.Duration
}

// DefaultCallTimeout is a Host's CallTimeout: far above any call a test makes (the slowest,
// a stop waiting out its grace period, takes seconds).
const DefaultCallTimeout = 60 * time.Second

// HostOptions say how NewHostWith makes a host.
type HostOptions struct {
	// NoDaemon leaves the daemon to the test (StartDaemon), e.g. to start it with flags
	// that need something else to exist first (a cluster store).
	NoDaemon bool
	// DaemonArgs are passed to every start of the daemon (see SetDaemonArgs).
	DaemonArgs []string
	// Links are links the test itself puts in the host (see AllowLinks).
	Links []string
}

// NewHost starts a host and its daemon; both are removed when the test ends.
func NewHost(t testing.TB) *Host {
	t.Helper()
	return NewHostWith(t, HostOptions{})
}

// NewHostWith starts a host as opts say; it is removed when the test ends.
func NewHostWith(t testing.TB, opts HostOptions) *Host {
	t.Helper()
	RequireRoot(t)
	h := &Host{t: t, CallTimeout: DefaultCallTimeout,
		daemonArgs: append([]string(nil), opts.DaemonArgs...), ownLinks: append([]string(nil), opts.Links...)}
	if !opts.NoDaemon {
		h.Bin = Binary(t)
	}
	h.BareHost = NewBareHost(t, "cnet-host-")
	h.Socket = filepath.Join(h.Dir, "cnet.sock")
	t.Cleanup(h.teardown)
	if !opts.NoDaemon {
		h.StartDaemon()
	}
	t.Cleanup(h.checkClean)
	return h
}

// SetDaemonArgs replaces the args passed to every later start of the daemon. Args given to
// one StartDaemon call are for that start only (a test that starts it once with
// --no-connect-translation gets the default back with StartDaemon()).
func (h *Host) SetDaemonArgs(args ...string) { h.daemonArgs = append([]string(nil), args...) }

// DaemonArgs returns the args passed to every start of the daemon.
func (h *Host) DaemonArgs() []string { return append([]string(nil), h.daemonArgs...) }

// AllowLinks declares links the test put in the host itself (an underlay's "ul0"): the
// cleanup check does not count them as links cnet left behind.
func (h *Host) AllowLinks(names ...string) { h.ownLinks = append(h.ownLinks, names...) }

// StartDaemon starts the host's daemon and waits until it answers.
func (h *Host) StartDaemon(extra ...string) {
	h.t.Helper()
	h.startDaemon(nil, true, extra...)
}

// StartDaemonEnv starts the daemon with extra environment (e.g. a crash point).
func (h *Host) StartDaemonEnv(env []string, extra ...string) {
	h.t.Helper()
	h.startDaemon(env, true, extra...)
}

func (h *Host) startDaemon(env []string, wait bool, extra ...string) {
	h.t.Helper()
	if h.Dead() {
		h.t.Fatal("starting the daemon of a host that was killed")
	}
	if h.Bin == "" {
		h.Bin = Binary(h.t)
	}
	logf, err := os.OpenFile(filepath.Join(h.Dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"-t", strconv.Itoa(h.pid), "-n", "-m", "-p", h.Bin, "daemon",
		"--data-root", filepath.Join(h.Dir, "data"), "--exec-root", filepath.Join(h.Dir, "exec"),
		"-H", "unix://" + h.Socket, "--debug"}, h.daemonArgs...)
	args = append(args, extra...)
	h.daemon = exec.Command("nsenter", args...)
	h.daemon.Stdout, h.daemon.Stderr = logf, logf
	h.daemon.Env = append(os.Environ(), env...)
	if err := h.daemon.Start(); err != nil {
		h.t.Fatalf("starting the daemon: %v", err)
	}
	h.started = true
	exited := make(chan struct{})
	h.exited = exited
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(h.daemon)
	if !wait {
		return
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			h.t.Fatalf("the daemon exited at start:\n%s", h.DaemonLog())
		default:
		}
		if _, _, code := h.cli("network", "ls", "-q"); code == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("the daemon did not answer within 15s:\n%s\nits goroutines:\n%s", h.DaemonLog(), h.goroutines())
}

// WaitDaemonGone waits for a daemon that is meant to die by itself (a crash point) to be gone.
func (h *Host) WaitDaemonGone() {
	h.t.Helper()
	select {
	case <-h.exited:
	case <-time.After(20 * time.Second):
		h.t.Fatalf("the daemon did not crash at its crash point:\n%s", h.DaemonLog())
	}
	h.daemon = nil
}

// KillDaemon kills the daemon with SIGKILL, as a crash would, and waits for it to be gone.
func (h *Host) KillDaemon() {
	h.t.Helper()
	h.signalDaemon(syscall.SIGKILL)
}

// StopDaemon stops the daemon with SIGTERM, as an administrator would.
func (h *Host) StopDaemon() {
	h.t.Helper()
	h.signalDaemon(syscall.SIGTERM)
}

// Kill kills the host as if the machine died: its daemon, every process it started and its
// network namespace, with no chance to clean up. The cleanup check then has nothing to check.
func (h *Host) Kill() {
	h.BareHost.Kill()
	if h.daemon != nil {
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			h.t.Errorf("the daemon outlived its host's PID namespace by 10s")
			_ = h.daemon.Process.Kill()
		}
		h.daemon = nil
	}
}

// DaemonPid returns the daemon's PID as the test process sees it (0 if it is not running).
func (h *Host) DaemonPid() int {
	if h.daemon == nil || h.daemon.Process == nil {
		return 0
	}
	// nsenter forks for the PID namespace: the daemon is its child.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", h.daemon.Process.Pid, h.daemon.Process.Pid))
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

func (h *Host) signalDaemon(sig syscall.Signal) {
	if h.daemon == nil || h.daemon.Process == nil {
		return
	}
	if pid := h.DaemonPid(); pid > 0 {
		_ = syscall.Kill(pid, sig)
	}
	select {
	case <-h.exited:
	case <-time.After(10 * time.Second):
		h.t.Errorf("the daemon did not stop on %v", sig)
		_ = h.daemon.Process.Kill()
	}
	h.daemon = nil
}

// DaemonLog returns what the daemon logged so far.
func (h *Host) DaemonLog() string {
	data, _ := os.ReadFile(filepath.Join(h.Dir, "daemon.log"))
	return string(data)
}

func (h *Host) cli(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), h.CallTimeout)
	defer cancel()
	cmd := h.CmdContext(ctx, h.Bin, append([]string{"-H", "unix://" + h.Socket}, args...)...)
	// nsenter forks the CLI into the host's PID namespace: the whole process group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Start()
	if err == nil {
		err = cmd.Wait()
	}
	code = 0
	if ctx.Err() != nil {
		h.hung(fmt.Sprintf("cnet %s", strings.Join(args, " ")))
		return o.String(), e.String() + "\n(no answer within " + h.CallTimeout.String() + ")", -1
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			e.WriteString(err.Error())
		}
	}
	return o.String(), e.String(), code
}

// Call runs fn, an API call, with a context that ends at the host's CallTimeout; if the
// deadline passes, the test fails with the daemon's goroutines. It returns fn's error.
func (h *Host) Call(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.CallTimeout)
	defer cancel()
	err := fn(ctx)
	if ctx.Err() != nil {
		h.hung("an API call")
	}
	return err
}

// API returns a client of the host's daemon whose every call ends at the host's CallTimeout
// and fails the test with the daemon's goroutines when it does. Streams (attach, logs, wait)
// are not bounded by it: run them through Call.
func (h *Host) API() *api.Client {
	h.t.Helper()
	cl, err := api.NewClient("unix://" + h.Socket)
	if err != nil {
		h.t.Fatal(err)
	}
	cl.Timeout = h.CallTimeout
	cl.OnTimeout = func(method, path string) { h.hung(method + " " + path) }
	return cl
}

// hung fails the test for a call that did not answer in time, showing where every goroutine
// of the daemon stands. Safe from any goroutine.
func (h *Host) hung(what string) {
	h.t.Errorf("%s: no answer within %s; the daemon's goroutines:\n%s", what, h.CallTimeout, h.goroutines())
}

// goroutines has the daemon dump its goroutines into its log (it does on SIGUSR1, and keeps
// running) and returns the dump.
func (h *Host) goroutines() string {
	before := len(h.DaemonLog())
	if pid := h.DaemonPid(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGUSR1)
	}
	dump := ""
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if log := h.DaemonLog(); len(log) > before {
			tail := log[before:]
			if i := strings.Index(tail, "=== end of goroutine dump"); i >= 0 {
				dump = tail[:i]
				break
			}
		}
	}
	if dump == "" {
		dump = "(the daemon wrote no goroutine dump within 5s)"
	}
	return dump
}

// CLI runs `cnet ARGS...` against the host's daemon and returns its output and exit code.
func (h *Host) CLI(args ...string) (stdout, stderr string, code int) {
	h.t.Helper()
	stdout, stderr, code = h.cli(args...)
	h.logMu.Lock()
	h.logs = append(h.logs, fmt.Sprintf("$ cnet %s\n%s%s[exit %d]", strings.Join(args, " "), stdout, stderr, code))
	h.logMu.Unlock()
	return stdout, stderr, code
}

// MustCLI runs `cnet ARGS...` and fails the test unless it exits 0; it returns stdout.
func (h *Host) MustCLI(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.CLI(args...)
	if code != 0 {
		h.t.Fatalf("cnet %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}
