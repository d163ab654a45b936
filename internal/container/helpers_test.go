package container

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
)

// The test binary doubles as the shim, as the cnet binary does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "shim":
			ShimMain(os.Args[2:])
		case "test-daemon":
			testDaemonMain(os.Args[2:])
		}
	}
	// Processes orphaned by a test (a container whose shim was killed) come back to the test
	// to be reaped, instead of to a PID 1 that may not reap them.
	if os.Geteuid() == 0 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if left := children(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes left behind (children of the test, zombies included): %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// children lists this process's child processes, reaped or not.
func children() []string {
	var out []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		var pid int
		fmt.Sscan(filepath.Base(p), &pid)
		if st, err := readStat(pid); err == nil && st.ppid == os.Getpid() {
			comm, _ := os.ReadFile(p + "/comm")
			out = append(out, fmt.Sprintf("%d(%c %s)", pid, st.state, strings.TrimSpace(string(comm))))
		}
	}
	return out
}

// testDaemonMain stands in for a daemon other than the test process: it starts a container
// (`test-daemon DIR SPEC-JSON`), prints the Process and stays alive, never reaping the shim,
// until its stdin closes.
func testDaemonMain(args []string) {
	var spec Spec
	if err := json.Unmarshal([]byte(args[1]), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p, err := Start(args[0], spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(p)
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

const busybox = "/bin/busybox"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces and mounts)")
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("needs %s (apt-get install busybox-static): %v", busybox, err)
	}
}

// newNetns creates a throwaway network namespace bound to a file, without ever moving this
// process's other threads out of the host's namespace. After the test it checks that no
// process is left in it, then removes it.
func newNetns(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		err = unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "", unix.MS_BIND, "")
		if e := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); e != nil {
			// Leave the thread locked so that the runtime discards it.
			errc <- fmt.Errorf("returning to the original netns: %w", e)
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("creating netns: %v", err)
	}
	t.Cleanup(func() {
		checkNoProcessIn(t, path)
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting netns %s: %v", path, err)
		}
		checkNoMountUnder(t, filepath.Dir(path))
	})
	return path
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// checkNoProcessIn fails the test if any process is still in the network namespace nsPath.
func checkNoProcessIn(t *testing.T, nsPath string) {
	t.Helper()
	want := inode(t, nsPath)
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		var st unix.Stat_t
		if unix.Stat(p+"/ns/net", &st) == nil && st.Ino == want {
			cmd, _ := os.ReadFile(p + "/cmdline")
			t.Errorf("process %s (%q) left in the test's netns", filepath.Base(p), bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		}
	}
}

func checkNoMountUnder(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, dir) {
			t.Errorf("mount left behind: %s", line)
		}
	}
}

// bbPath makes a directory of busybox applet links and returns a PATH that puts it first, so
// that commands inside a container on the host's filesystem are busybox's.
func bbPath(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "hostname", "ip", "ls", "sleep", "echo", "tty", "readlink", "env", "pwd"} {
		if err := os.Symlink(busybox, filepath.Join(dir, a)); err != nil {
			t.Fatal(err)
		}
	}
	return "PATH=" + dir + ":/usr/bin:/bin"
}

// testContainer is a started container the test cleans up after.
type testContainer struct {
	dir  string
	proc Process
}

// start starts spec in a fresh directory (and, unless spec has one, a fresh netns), and
// makes sure neither the shim nor the process outlives the test.
func start(t *testing.T, spec Spec) *testContainer {
	t.Helper()
	if spec.NetNSPath == "" {
		spec.NetNSPath = newNetns(t)
	}
	dir := t.TempDir()
	p, err := Start(dir, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	c := &testContainer{dir: dir, proc: p}
	t.Cleanup(func() { c.kill(t) })
	return c
}

func (c *testContainer) kill(t *testing.T) {
	t.Helper()
	// The shim is let to reap the process and end by itself; killed too early, it would leave
	// the process to be reaped by someone else.
	// Signal, not a kill of the recorded pid: a container that already ended leaves its pid
	// file behind, and with pid_max at 32768 that pid may belong to anything by now (a
	// cleanup once killed a container of the integration tests running alongside).
	_ = Signal(c.dir, unix.SIGKILL)
	select {
	case <-Watch(c.proc):
		return
	case <-time.After(5 * time.Second):
	}
	if Alive(c.proc) {
		_ = unix.Kill(c.proc.ShimPid, unix.SIGKILL)
	}
	select {
	case <-Watch(c.proc):
	case <-time.After(10 * time.Second):
		t.Errorf("shim %d did not end", c.proc.ShimPid)
	}
}

// wait waits for the container to end and returns its recorded exit.
func (c *testContainer) wait(t *testing.T) (ExitStatus, bool) {
	t.Helper()
	select {
	case <-Watch(c.proc):
	case <-time.After(20 * time.Second):
		t.Fatalf("container did not end; log so far: %q", c.logText(t))
	}
	return ReadExit(c.dir)
}

// logText returns the log demultiplexed, stdout then stderr.
func (c *testContainer) logText(t *testing.T) string {
	t.Helper()
	stdout, stderr := c.logStreams(t)
	return stdout + stderr
}

func (c *testContainer) logStreams(t *testing.T) (string, string) {
	t.Helper()
	rc, err := OpenLog(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var stdout, stderr bytes.Buffer
	if err := api.Demux(&stdout, &stderr, rc); err != nil {
		t.Fatalf("demux log: %v", err)
	}
	return stdout.String(), stderr.String()
}

// waitPid waits until the shim has recorded the container process's pid.
func waitPid(t *testing.T, dir string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pid := Pid(dir); pid != 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("container process never started")
	return 0
}

// connPair returns two connected unix stream sockets: a stand-in for a hijacked client
// connection that supports half-close.
func connPair(t *testing.T) (server, client *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c.(*net.UnixConn)
		t.Cleanup(func() { c.Close() })
	}
	return conns[0], conns[1]
}

// serve runs a.Serve on one end of a connection pair, optionally writing input and
// half-closing, and returns what the client end received and Serve's error.
func serve(t *testing.T, a api.Attachment, input string, halfClose bool) ([]byte, error) {
	t.Helper()
	srv, cli := connPair(t)
	errc := make(chan error, 1)
	go func() {
		err := a.Serve(srv)
		srv.Close()
		errc <- err
	}()
	if input != "" {
		if _, err := io.WriteString(cli, input); err != nil {
			t.Fatalf("writing input: %v", err)
		}
	}
	if halfClose {
		if err := cli.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	_ = cli.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(cli)
	if err != nil {
		t.Fatalf("reading output: %v (so far %q)", err, got)
	}
	select {
	case err := <-errc:
		return got, err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the output ended")
		return nil, nil
	}
}

func demux(t *testing.T, b []byte) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := api.Demux(&stdout, &stderr, bytes.NewReader(b)); err != nil {
		t.Fatalf("demux %q: %v", b, err)
	}
	return stdout.String(), stderr.String()
}

// processesOf lists pids whose command line mentions s (a test's directory).
func processesOf(s string) []string {
	var out []string
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		cmd, err := os.ReadFile(p + "/cmdline")
		if err == nil && bytes.Contains(cmd, []byte(s)) {
			out = append(out, filepath.Base(p))
		}
	}
	return out
}
