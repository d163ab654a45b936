package container

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
)

// ExecSpec is an extra process to run inside a running container (cnet exec).
type ExecSpec struct {
	Args, Env []string
	// WorkingDir is inside the container; "" is the container process's current directory.
	WorkingDir     string
	Tty, OpenStdin bool
	// ConsoleSize is as Spec.ConsoleSize.
	ConsoleSize [2]uint16
	// User is as Spec.User, looked up in the container's files.
	User string
}

// Exec is one such process, started by Serve. It implements api.Attachment.
type Exec struct {
	target int
	spec   ExecSpec

	mu       sync.Mutex
	started  bool
	running  bool
	pid      int
	exitCode int
	tty      *os.File // the terminal's master while a -t exec runs (Resize)
}

// NewExec prepares spec to run in the namespaces (network, UTS, mount) and root of the container
// process targetPid. Nothing runs until Serve.
func NewExec(targetPid int, spec ExecSpec) *Exec {
	return &Exec{target: targetPid, spec: spec, exitCode: -1}
}

// Tty reports whether the output is raw (a terminal) rather than frames.
func (e *Exec) Tty() bool { return e.spec.Tty }

// ExitCode returns the process's exit code (128+N if killed by signal N; 126/127 if it could not
// be started), or -1 while it has not ended.
func (e *Exec) ExitCode() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exitCode
}

// Running reports whether the process has started and not yet ended.
func (e *Exec) Running() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.running
}

// Pid returns the process's pid on the host, 0 before it started.
func (e *Exec) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pid
}

// Serve starts the process with its stdio on conn, waits for it and records its exit code. If
// it cannot be started, the reason goes to the client as error output (as Docker shows it) and
// is returned; once started, Serve returns nil when the process has ended, whatever its code.
// A client that goes away does not stop the process.
func (e *Exec) Serve(conn net.Conn) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("exec was already started")
	}
	e.started = true
	e.mu.Unlock()

	out := &connSink{}
	out.stdout, out.stderr = streamWriters(conn, e.spec.Tty)
	proc, sio, err := e.start()
	if err != nil {
		msg := err.Error() + "\n"
		if e.spec.Tty {
			msg = err.Error() + "\r\n"
		}
		out.write(api.StreamStderr, []byte(msg))
		e.mu.Lock()
		e.exitCode = exitCodeOf(err)
		e.mu.Unlock()
		return err
	}
	defer sio.close()
	e.mu.Lock()
	e.running, e.pid = true, proc.Pid
	if e.spec.Tty {
		e.tty = sio.srcs[0].f
	}
	e.mu.Unlock()

	sio.pump(out.write)
	if e.spec.OpenStdin {
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := conn.Read(buf)
				if n > 0 {
					sio.writeStdin(buf[:n])
				}
				if err != nil {
					break
				}
			}
			sio.closeStdin()
		}()
	}
	state, err := proc.Wait()
	code := 255
	if err == nil {
		code = waitStatusCode(state)
	}
	sio.drain()
	e.mu.Lock()
	e.running, e.exitCode, e.tty = false, code, nil
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("waiting for exec process: %w", err)
	}
	return nil
}

func (e *Exec) start() (*os.Process, *stdio, error) {
	if len(e.spec.Args) == 0 {
		return nil, nil, &StartError{Code: 126, Msg: "no command specified"}
	}
	sio, err := newStdio(e.spec.Tty, e.spec.OpenStdin, e.spec.ConsoleSize)
	if err != nil {
		return nil, nil, err
	}
	var proc *os.Process
	onTaintedThread(func() {
		var path string
		var env []string
		var cred *syscall.Credential
		if path, env, cred, err = enterContainer(e.target, e.spec); err == nil {
			proc, err = startProcess(path, e.spec.Args, env, sio.child, e.spec.Tty, cred)
		}
	})
	sio.closeChild()
	if err != nil {
		sio.close()
		return nil, nil, err
	}
	return proc, sio, nil
}

// enterContainer moves the calling thread (see onTaintedThread) into the namespaces, root and
// working directory of process pid, and resolves the command there.
func enterContainer(pid int, spec ExecSpec) (path string, env []string, cred *syscall.Credential, err error) {
	// Everything of the target is opened first: once in its mount namespace, our /proc paths
	// may not exist any more (a rootfs container without /proc).
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(name string, flags int) (int, error) {
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/%s", pid, name), flags|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
				return -1, fmt.Errorf("entering container process %d: %w", pid, ErrNotRunning)
			}
			return -1, fmt.Errorf("entering container process %d: opening its %s: %w", pid, name, err)
		}
		fds = append(fds, fd)
		return fd, nil
	}
	var nsFds [3]int
	nsTypes := [3]int{unix.CLONE_NEWNET, unix.CLONE_NEWUTS, unix.CLONE_NEWNS}
	for i, name := range []string{"ns/net", "ns/uts", "ns/mnt"} {
		if nsFds[i], err = open(name, unix.O_RDONLY); err != nil {
			return "", nil, nil, err
		}
	}
	rootFd, err := open("root", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", nil, nil, err
	}
	cwdFd, err := open("cwd", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", nil, nil, err
	}

	// Joining a mount namespace needs a root and cwd this thread does not share.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return "", nil, nil, fmt.Errorf("entering container: unsharing filesystem context: %w", err)
	}
	for i, fd := range nsFds {
		if err := unix.Setns(fd, nsTypes[i]); err != nil {
			return "", nil, nil, fmt.Errorf("entering container process %d's namespaces: %w", pid, err)
		}
	}
	// Joining the mount namespace reset root and cwd to the namespace's; the container's root
	// may be a chroot inside it.
	if err := unix.Fchdir(rootFd); err != nil {
		return "", nil, nil, fmt.Errorf("entering container root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return "", nil, nil, fmt.Errorf("entering container root: %w", err)
	}
	if spec.WorkingDir != "" {
		if err := enterWorkingDir(spec.WorkingDir); err != nil {
			return "", nil, nil, err
		}
	} else if err := unix.Fchdir(cwdFd); err != nil {
		return "", nil, nil, fmt.Errorf("entering container's working directory: %w", err)
	}
	cred, home, err := resolveUser(spec.User)
	if err != nil {
		return "", nil, nil, err
	}
	env = withDefaults(spec.Env, home)
	pathEnv, _ := lookupEnv(env, "PATH")
	path, err = lookPath(spec.Args[0], pathEnv)
	return path, env, cred, err
}

// connSink writes output to a client until the client fails, then discards it: the process's
// output must keep being read so that it does not block.
type connSink struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
	failed         bool
}

func (c *connSink) write(stream byte, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return
	}
	w := c.stdout
	if stream == api.StreamStderr {
		w = c.stderr
	}
	if _, err := w.Write(p); err != nil {
		c.failed = true
	}
}
