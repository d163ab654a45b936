package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cnet-dev/cnet/internal/api"
)

// attachWait is how long a shim started with Spec.Attach waits for its client before starting
// the process anyway (the client may have died; the container should not hang because of it).
const attachWait = 60 * time.Second

// ShimMain runs `cnet shim DIR`, the process that owns one container: it starts the container's
// process, records its pid, copies its output to DIR/log and to attached clients, waits for it
// and records how it ended. It never returns.
func ShimMain(args []string) {
	// fd 3 is the handshake pipe to Start; it must not leak into the container's process.
	unix.CloseOnExec(3)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if len(args) != 1 {
		logger.Error("usage: cnet shim DIR")
		os.Exit(2)
	}
	s := &shim{dir: args[0], hs: os.NewFile(3, "handshake"), log: logger.With("dir", args[0])}
	os.Exit(s.run())
}

type shim struct {
	dir  string
	hs   *os.File // handshake to Start; nil once answered
	log  *slog.Logger
	spec Spec
	io   *stdio
	out  *output
}

type startResult struct {
	proc *os.Process
	err  error
}

func (s *shim) run() int {
	b, err := os.ReadFile(filepath.Join(s.dir, configFile))
	if err == nil {
		err = json.Unmarshal(b, &s.spec)
	}
	if err != nil {
		return s.fail(fmt.Errorf("reading container config: %w", err))
	}
	if len(s.spec.Args) == 0 {
		return s.fail(errors.New("container config has no command"))
	}
	s.log = s.log.With("container", s.spec.ID)

	if s.io, err = newStdio(s.spec.Tty, s.spec.OpenStdin, s.spec.ConsoleSize); err != nil {
		return s.fail(err)
	}
	defer s.io.close()
	if s.spec.Tty {
		// The daemon resizes the terminal through its device (ResizeTTY).
		if err := os.WriteFile(filepath.Join(s.dir, ttyFile), []byte(s.io.child[0].Name()), 0o600); err != nil {
			s.io.closeChild()
			return s.fail(fmt.Errorf("recording the container's terminal: %w", err))
		}
		defer os.Remove(filepath.Join(s.dir, ttyFile))
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.io.closeChild()
		return s.fail(fmt.Errorf("opening container log: %w", err))
	}
	defer logf.Close()
	s.out = newOutput(logf, s.spec.Tty, s.log)
	ln, err := listenAttach(s.dir)
	if err != nil {
		s.io.closeChild()
		return s.fail(err)
	}
	defer closeAttach(s.dir, ln)

	// The namespaces are prepared on a thread of their own, which stays there until the process
	// is started from it (possibly only once a client attached).
	ready := make(chan error, 1)
	gate := make(chan struct{})
	started := make(chan startResult, 1)
	var mntNS nsID
	go onTaintedThread(func() {
		path, env, cred, mnt, err := prepareContainer(&s.spec, s.log)
		mntNS = mnt
		ready <- err
		if err != nil {
			return
		}
		<-gate
		p, err := startProcess(path, s.spec.Args, env, s.io.child, s.spec.Tty, cred)
		started <- startResult{p, err}
	})
	if err := <-ready; err != nil {
		s.io.closeChild()
		return s.fail(err)
	}
	// A daemon that died in the middle of Start never records this container as running, so
	// nothing would ever stop its process: start none (and, should it die between this check
	// and reading the answer, stop the process before anyone sees it, below).
	if s.daemonGone() {
		s.io.closeChild()
		return s.abandon(nil)
	}
	var first *client
	if s.spec.Attach {
		if err := s.answer(nil); err != nil {
			s.io.closeChild()
			return s.abandon(nil)
		}
		first = s.acceptFirst(ln)
	}
	close(gate)
	res := <-started
	s.io.closeChild()
	if res.err != nil {
		if !s.spec.Attach {
			return s.fail(res.err)
		}
		// Start already returned: the attached client and the exit status are all that can
		// carry the error now.
		s.out.write(api.StreamStderr, []byte(res.err.Error()+"\n"))
		s.finish(ExitStatus{Code: exitCodeOf(res.err), FinishedAt: time.Now().UTC(), Error: res.err.Error()})
		return 0
	}
	if err := writeFileAtomic(filepath.Join(s.dir, pidFile), []byte(strconv.Itoa(res.proc.Pid))); err != nil {
		s.log.Error("recording container pid", "err", err)
	}
	if !s.spec.Attach {
		if err := s.answer(nil); err != nil {
			_ = res.proc.Kill()
			_, _ = res.proc.Wait()
			s.killRest(mntNS)
			return s.abandon(err)
		}
	}

	s.io.pump(s.out.write)
	if first != nil {
		go s.serveInput(first, true)
	}
	go s.acceptLoop(ln)

	state, err := res.proc.Wait()
	status := ExitStatus{Code: 255}
	if err != nil {
		s.log.Error("waiting for container process", "err", err)
	} else {
		status.Code = waitStatusCode(state)
	}
	s.killRest(mntNS)
	s.io.drain()
	status.FinishedAt = time.Now().UTC()
	s.finish(status)
	return 0
}

// nsID identifies a namespace as the kernel does: by the nsfs inode.
type nsID struct{ dev, ino uint64 }

// threadNS returns the calling thread's namespace of the given kind.
func threadNS(kind string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/"+kind, &st); err != nil {
		return nsID{}, fmt.Errorf("identifying the container's %s namespace: %w", kind, err)
	}
	return nsID{st.Dev, st.Ino}, nil
}

// killRest kills what is left of the container once its main process has ended: background
// processes and execs, which all live in its mount namespace. Docker's containers end that way
// (their pid namespace dies with its init); here it also keeps strays from holding the output
// open and the network namespace alive after the daemon tore it down.
func (s *shim) killRest(mnt nsID) {
	self := os.Getpid()
	for range 100 {
		found := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == self {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/mnt", &st) != nil || st.Dev != mnt.dev || st.Ino != mnt.ino {
				continue
			}
			found++
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if found == 0 {
			return
		}
		// Killed processes keep their namespaces until they have finished exiting.
		time.Sleep(10 * time.Millisecond)
	}
	s.log.Warn("processes of the container survive its end")
}

// finish records the exit, then lets attached clients go: a client that sees its connection end
// can read the exit status at once.
func (s *shim) finish(status ExitStatus) {
	if err := writeJSONAtomic(filepath.Join(s.dir, exitFile), status); err != nil {
		s.log.Error("recording container exit", "err", err)
	}
	if err := os.Remove(filepath.Join(s.dir, pidFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("removing pid file", "err", err)
	}
	s.out.closeClients()
}

// daemonGone reports that the daemon that ran Start is gone: the read end of the handshake
// pipe closed with it, which poll reports as an error on the write end.
func (s *shim) daemonGone() bool {
	if s.hs == nil {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(s.hs.Fd()), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLERR != 0
}

// abandon ends a start the daemon will never know of, recording why.
func (s *shim) abandon(err error) int {
	s.log.Error("the daemon died while starting the container; not running it", "err", err)
	s.finish(ExitStatus{Code: 137, FinishedAt: time.Now().UTC(), Error: "the daemon died while starting the container"})
	return 1
}

// answer tells Start how starting went, once. It fails when nobody reads the answer any more:
// the daemon died in the middle of Start (the pipe's read end went with it).
func (s *shim) answer(err error) error {
	if s.hs == nil {
		return nil
	}
	var hs handshake
	if err != nil {
		hs.Error = err.Error()
		var se *StartError
		if errors.As(err, &se) {
			hs.Code = se.Code
		}
	}
	werr := json.NewEncoder(s.hs).Encode(hs)
	s.hs.Close()
	s.hs = nil
	return werr
}

func (s *shim) fail(err error) int {
	s.log.Error("container not started", "err", err)
	_ = s.answer(err) // a daemon that is gone has nothing to learn
	return 1
}

// acceptFirst waits for the client of a foreground run; nil if it did not come in time.
func (s *shim) acceptFirst(ln *net.UnixListener) *client {
	_ = ln.SetDeadline(time.Now().Add(attachWait))
	defer func() { _ = ln.SetDeadline(time.Time{}) }()
	conn, err := ln.AcceptUnix()
	if err != nil {
		s.log.Warn("no client attached; starting the container detached", "err", err)
		return nil
	}
	return s.out.add(conn)
}

// acceptLoop serves later attach connections (`cnet attach`) until the shim closes the listener.
func (s *shim) acceptLoop(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go s.serveInput(s.out.add(conn), false)
	}
}

// serveInput copies a client's input to the process. Only the client of a foreground run owns
// stdin: its end of input closes the process's stdin, as `docker run -i` does.
func (s *shim) serveInput(c *client, ownsStdin bool) {
	buf := make([]byte, 32*1024)
	for {
		n, err := c.conn.Read(buf)
		if n > 0 {
			s.io.writeStdin(buf[:n])
		}
		if err != nil {
			break
		}
	}
	if ownsStdin {
		s.io.closeStdin()
	}
}

// waitStatusCode reports an exit the way Docker does: 128+N for death by signal N.
func waitStatusCode(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}

func exitCodeOf(err error) int {
	var se *StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return 126
}

// output fans the process's output out to the log and to every attached client, in the wire
// format: frames, or raw with a tty.
type output struct {
	mu        sync.Mutex
	tty       bool
	log       *slog.Logger
	fileOut   io.Writer
	fileErr   io.Writer
	logFailed bool
	clients   map[*client]struct{}
}

type client struct {
	conn           *net.UnixConn
	stdout, stderr io.Writer
}

func newOutput(f *os.File, tty bool, logger *slog.Logger) *output {
	o := &output{tty: tty, log: logger, clients: map[*client]struct{}{}}
	o.fileOut, o.fileErr = streamWriters(f, tty)
	return o
}

// streamWriters returns where stdout and stderr go on w: separate frame writers, or w itself.
func streamWriters(w io.Writer, tty bool) (stdout, stderr io.Writer) {
	if tty {
		return w, w
	}
	return api.NewFrameWriters(w)
}

func (o *output) add(conn *net.UnixConn) *client {
	c := &client{conn: conn}
	c.stdout, c.stderr = streamWriters(conn, o.tty)
	o.mu.Lock()
	o.clients[c] = struct{}{}
	o.mu.Unlock()
	return c
}

// write sends one chunk everywhere. A client whose connection fails is dropped so that it
// holds up neither the process nor the log.
func (o *output) write(stream byte, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.fileOut
	if stream == api.StreamStderr {
		w = o.fileErr
	}
	if _, err := w.Write(p); err != nil && !o.logFailed {
		o.logFailed = true
		o.log.Error("writing container log; later output is missing from it", "err", err)
	}
	for c := range o.clients {
		w := c.stdout
		if stream == api.StreamStderr {
			w = c.stderr
		}
		if _, err := w.Write(p); err != nil {
			c.conn.Close()
			delete(o.clients, c)
		}
	}
}

func (o *output) closeClients() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for c := range o.clients {
		c.conn.Close()
		delete(o.clients, c)
	}
}
