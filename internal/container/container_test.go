package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStartExitCodes(t *testing.T) {
	requireRoot(t)
	path := bbPath(t)
	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"success", "exit 0", 0},
		{"failure", "exit 3", 3},
		{"killed", "kill -9 $$", 137},
		{"terminated", "kill -TERM $$", 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := start(t, Spec{ID: tc.name, Args: []string{"sh", "-c", tc.script}, Env: []string{path}})
			st, ok := c.wait(t)
			if !ok {
				t.Fatal("no exit status recorded")
			}
			if st.Code != tc.want {
				t.Errorf("exit code %d, want %d", st.Code, tc.want)
			}
			if time.Since(st.FinishedAt) > time.Minute || st.Error != "" {
				t.Errorf("exit status %+v", st)
			}
			if Alive(c.proc) {
				t.Error("shim still alive after Watch fired")
			}
			if Pid(c.dir) != 0 {
				t.Error("pid file left after exit")
			}
		})
	}
}

func TestIdentityFiles(t *testing.T) {
	requireRoot(t)
	hostName, _ := os.Hostname()
	hostHosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := Spec{
		ID:             "ident",
		Args:           []string{"sh", "-c", "hostname; cat /proc/sys/kernel/domainname /etc/hosts /etc/resolv.conf /etc/hostname; pwd; echo HOME=$HOME"},
		Env:            []string{bbPath(t)},
		WorkingDir:     "/tmp",
		Hostname:       "ctr-host",
		Domainname:     "example.test",
		HostsPath:      write("hosts", "10.9.8.7\tctr-host\n"),
		ResolvConfPath: write("resolv.conf", "nameserver 127.0.0.11\n"),
		HostnamePath:   write("hostname", "ctr-host\n"),
	}
	c := start(t, spec)
	if st, ok := c.wait(t); !ok || st.Code != 0 {
		t.Fatalf("exit %+v %v; log %q", st, ok, c.logText(t))
	}
	stdout, stderr := c.logStreams(t)
	want := "ctr-host\nexample.test\n10.9.8.7\tctr-host\nnameserver 127.0.0.11\nctr-host\n/tmp\nHOME=/root\n"
	if stdout != want || stderr != "" {
		t.Errorf("inside the container got stdout %q stderr %q, want %q", stdout, stderr, want)
	}
	if h, _ := os.Hostname(); h != hostName {
		t.Errorf("host's hostname changed to %q", h)
	}
	if b, _ := os.ReadFile("/etc/hosts"); string(b) != string(hostHosts) {
		t.Errorf("host's /etc/hosts changed to %q", b)
	}
}

func TestNetworkNamespace(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	path := bbPath(t)
	c := start(t, Spec{ID: "sleeper", Args: []string{"sleep", "100"}, Env: []string{path}, NetNSPath: ns})
	pid := waitPid(t, c.dir)
	if got, want := inode(t, fmt.Sprintf("/proc/%d/ns/net", pid)), inode(t, ns); got != want {
		t.Errorf("container's netns inode %d, want %d (the given netns)", got, want)
	}
	// The shim prepared the namespaces on a thread it then discarded: the shim itself (as
	// /proc shows it, by its main thread) stayed where it was started.
	if got, want := inode(t, fmt.Sprintf("/proc/%d/ns/net", c.proc.ShimPid)), inode(t, "/proc/self/ns/net"); got != want {
		t.Errorf("shim's netns inode %d, want the test's %d", got, want)
	}
	if got, host := inode(t, fmt.Sprintf("/proc/%d/ns/uts", pid)), inode(t, "/proc/self/ns/uts"); got == host {
		t.Error("container shares the host's UTS namespace")
	}
	if got, host := inode(t, fmt.Sprintf("/proc/%d/ns/mnt", pid)), inode(t, "/proc/self/ns/mnt"); got == host {
		t.Error("container shares the host's mount namespace")
	}

	l := start(t, Spec{ID: "links", Args: []string{"sh", "-c", "ls /sys/class/net; ip -o link"}, Env: []string{path}, NetNSPath: ns})
	if st, ok := l.wait(t); !ok || st.Code != 0 {
		t.Fatalf("exit %+v %v; log %q", st, ok, l.logText(t))
	}
	out, _ := l.logStreams(t)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "lo" || !strings.HasPrefix(lines[1], "1: lo:") {
		t.Errorf("links inside the container: %q, want only lo", out)
	}
}

func TestStartFailures(t *testing.T) {
	requireRoot(t)
	path := bbPath(t)
	plain := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(plain, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		spec     Spec
		wantCode int // StartError code; 0 for another error
		wantMsg  string
	}{
		{"not found", Spec{Args: []string{"nosuchcmd"}}, 127, `exec: "nosuchcmd": executable file not found in $PATH`},
		{"missing path", Spec{Args: []string{"/nonexistent/cmd"}}, 127, `exec: "/nonexistent/cmd": stat /nonexistent/cmd: no such file or directory`},
		{"not executable", Spec{Args: []string{plain}}, 126, `exec: "` + plain + `": permission denied`},
		{"directory", Spec{Args: []string{"/etc"}}, 126, `exec: "/etc": is a directory`},
		{"bad working dir", Spec{Args: []string{"sh"}, WorkingDir: "/nonexistent"}, 126, `chdir to working directory "/nonexistent": no such file or directory`},
		{"missing netns", Spec{Args: []string{"sh"}, NetNSPath: "/nonexistent/netns"}, 0, "opening network namespace: open /nonexistent/netns: no such file or directory"},
		{"not a netns", Spec{Args: []string{"sh"}, NetNSPath: "/etc/hosts"}, 0, "joining network namespace /etc/hosts: invalid argument"},
		{"missing hosts file", Spec{Args: []string{"sh"}, HostsPath: "/nonexistent/hosts"}, 0, "file to mount over /etc/hosts: stat /nonexistent/hosts: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Env = []string{path}
			if spec.NetNSPath == "" {
				spec.NetNSPath = newNetns(t)
			}
			dir := t.TempDir()
			p, err := Start(dir, spec)
			if err == nil {
				unix.Kill(p.ShimPid, unix.SIGKILL)
				<-Watch(p)
				t.Fatal("Start succeeded")
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("error %q, want %q", err, tc.wantMsg)
			}
			var se *StartError
			if gotCode := 0; errors.As(err, &se) {
				gotCode = se.Code
				if gotCode != tc.wantCode {
					t.Errorf("StartError code %d, want %d", gotCode, tc.wantCode)
				}
			} else if tc.wantCode != 0 {
				t.Errorf("error %T is not a *StartError", err)
			}
			if left := processesOf(dir); len(left) > 0 {
				t.Errorf("processes left after a failed start: %v", left)
			}
			if Pid(dir) != 0 {
				t.Error("pid recorded for a process that never started")
			}
		})
	}
}

func TestWatchAfterShimKilled(t *testing.T) {
	requireRoot(t)
	c := start(t, Spec{ID: "orphan", Args: []string{"sleep", "100"}, Env: []string{bbPath(t)}})
	pid := waitPid(t, c.dir)
	if !Alive(c.proc) {
		t.Fatal("shim not alive")
	}
	if err := unix.Kill(c.proc.ShimPid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-Watch(c.proc):
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not fire after the shim was killed")
	}
	if Alive(c.proc) {
		t.Error("Alive after the shim was killed")
	}
	if st, ok := ReadExit(c.dir); ok {
		t.Errorf("exit status %+v recorded by a killed shim", st)
	}
	// The container outlives its shim; signalling it now is refused (no shim owns it).
	if err := Signal(c.dir, unix.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Signal to an orphaned process: %v, want ErrNotRunning", err)
	}
	unix.Kill(pid, unix.SIGKILL)
	// The orphan was reparented to the test process (a subreaper): reap it.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Errorf("reaping the orphaned container process: %v", err)
	}
	// Watch on a process that is long gone fires at once.
	select {
	case <-Watch(c.proc):
	case <-time.After(time.Second):
		t.Error("Watch of a gone shim did not fire at once")
	}
	select {
	case <-Watch(Process{ShimPid: os.Getpid(), StartTime: 1}):
	case <-time.After(time.Second):
		t.Error("Watch with a mismatched start time did not fire at once")
	}
}

func TestSignal(t *testing.T) {
	requireRoot(t)
	c := start(t, Spec{ID: "sig", Args: []string{"sleep", "100"}, Env: []string{bbPath(t)}})
	waitPid(t, c.dir)
	if err := Signal(c.dir, unix.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	st, ok := c.wait(t)
	if !ok || st.Code != 143 {
		t.Errorf("exit %+v %v, want code 143", st, ok)
	}
	if err := Signal(c.dir, unix.SIGTERM); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Signal after exit: %v, want ErrNotRunning", err)
	}
}

func TestHostNetwork(t *testing.T) {
	requireRoot(t)
	// --net host: the container stays in the shim's network namespace. The test process itself
	// runs in the host's, so the shim is started from a thread in a throwaway one.
	ns := newNetns(t)
	dir := t.TempDir()
	path := bbPath(t)
	var p Process
	var err error
	onTaintedThread(func() {
		fd, e := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if e != nil {
			err = e
			return
		}
		defer unix.Close(fd)
		if err = unix.Setns(fd, unix.CLONE_NEWNET); err == nil {
			p, err = Start(dir, Spec{ID: "hostnet", Args: []string{"sleep", "100"}, Env: []string{path}})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &testContainer{dir: dir, proc: p}
	t.Cleanup(func() { c.kill(t) })
	pid := waitPid(t, dir)
	if got, want := inode(t, fmt.Sprintf("/proc/%d/ns/net", pid)), inode(t, fmt.Sprintf("/proc/%d/ns/net", p.ShimPid)); got != want {
		t.Errorf("container netns %d, shim's %d", got, want)
	}
}

// After a daemon restart the shim is not the watcher's child: Watch still fires when it ends,
// and the exit is on record.
func TestWatchNotChild(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	spec, err := json.Marshal(Spec{ID: "adopted", Args: []string{"sleep", "100"}, Env: []string{bbPath(t)}, NetNSPath: newNetns(t)})
	if err != nil {
		t.Fatal(err)
	}
	daemon, stdin, p := startOtherDaemon(t, dir, spec)
	c := &testContainer{dir: dir, proc: p}
	t.Cleanup(func() {
		c.kill(t)
		stdin.Close()
		daemon.Wait()
		// The shim, if the other daemon left it unreaped, was reparented to the test process.
		var ws unix.WaitStatus
		_, _ = unix.Wait4(p.ShimPid, &ws, unix.WNOHANG, nil)
	})
	if !Alive(p) {
		t.Fatal("shim started by another process is not Alive")
	}
	waitPid(t, dir)
	watch := Watch(p)
	if err := Signal(dir, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch of a shim that is not our child did not fire")
	}
	if Alive(p) {
		t.Error("Alive after the shim ended")
	}
	if st, ok := ReadExit(dir); !ok || st.Code != 137 {
		t.Errorf("exit %+v %v, want code 137", st, ok)
	}
}

// When the main process ends, the rest of the container (background processes, execs) is
// killed, as it is in Docker.
func TestEndKillsTheRest(t *testing.T) {
	requireRoot(t)
	path := bbPath(t)
	c := start(t, Spec{ID: "rest", Args: []string{"sh", "-c", "sleep 1000 & echo $!; read x"}, Env: []string{path}, OpenStdin: true})
	pid := waitPid(t, c.dir)
	// The shell has started its background sleep once it printed its pid: killing it any
	// earlier would leave nothing to check (and the log empty).
	var out string
	for deadline := time.Now().Add(10 * time.Second); strings.TrimSpace(out) == "" && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		out, _ = c.logStreams(t)
	}
	e := NewExec(pid, ExecSpec{Args: []string{"sleep", "1000"}, Env: []string{path}})
	served := make(chan error, 1)
	srv, _ := connPair(t)
	go func() { served <- e.Serve(srv) }()
	for e.Pid() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := Signal(c.dir, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, ok := c.wait(t); !ok || st.Code != 137 {
		t.Errorf("exit %+v %v", st, ok)
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("exec did not end with the container")
	}
	if e.ExitCode() != 137 {
		t.Errorf("exec exit code %d, want 137", e.ExitCode())
	}
	var bg int
	if _, err := fmt.Sscan(out, &bg); err != nil {
		t.Fatalf("background pid in %q: %v", out, err)
	}
	// The background sleep was orphaned to the test process (a subreaper): it must be dead.
	var ws unix.WaitStatus
	if _, err := unix.Wait4(bg, &ws, 0, nil); err != nil || !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Errorf("background process: wait %v, status %v", err, ws)
	}
}

// startOtherDaemon starts a process that plays a daemon (test-daemon: it starts the container
// of spec in dir and waits on its stdin) and returns it, its stdin and the Process it started.
func startOtherDaemon(t *testing.T, dir string, spec []byte) (*exec.Cmd, io.WriteCloser, Process) {
	t.Helper()
	daemon := exec.Command("/proc/self/exe", "test-daemon", dir, string(spec))
	daemon.Stderr = os.Stderr
	stdin, err := daemon.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := daemon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	var p Process
	if err := json.NewDecoder(stdout).Decode(&p); err != nil {
		stdin.Close()
		_ = daemon.Wait()
		t.Fatalf("reading Process from the other daemon: %v", err)
	}
	return daemon, stdin, p
}
