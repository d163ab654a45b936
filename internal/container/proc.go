package container

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procStat is what we need from /proc/PID/stat.
type procStat struct {
	state     byte
	ppid      int
	startTime uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name (field 2) is in parentheses and may itself contain spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state), so field N is f[N-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	return procStat{state: f[0][0], ppid: ppid, startTime: start}, nil
}

func (s procStat) exited() bool { return s.state == 'Z' || s.state == 'X' }

// Alive reports whether p is still the same running shim. A shim that ended but was not reaped
// yet (a zombie) is not alive.
func Alive(p Process) bool {
	if p.ShimPid <= 0 {
		return false
	}
	st, err := readStat(p.ShimPid)
	return err == nil && st.startTime == p.StartTime && !st.exited()
}

// Watch returns a channel that is closed once the shim p has ended. It works whether or not the
// shim is the caller's child (a restarted daemon watches shims it did not start), and reaps the
// shim when it is, so that no zombie remains. If p is already gone the channel is closed at once.
func Watch(p Process) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		waitShim(p)
	}()
	return ch
}

func waitShim(p Process) {
	if p.ShimPid <= 0 {
		return
	}
	// A non-blocking pidfd lets the runtime's poller wait for the exit instead of parking one OS
	// thread per container in poll(2).
	fd, err := unix.PidfdOpen(p.ShimPid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 5.10 lack PIDFD_NONBLOCK: wait in poll(2) then.
		fd, err = unix.PidfdOpen(p.ShimPid, 0)
	}
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	// The pidfd pins the pid: if the start time matches now, the pidfd refers to our shim.
	if st, err := readStat(p.ShimPid); err != nil || st.startTime != p.StartTime {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	if err := rc.Read(func(fd uintptr) bool { return pidfdExited(int(fd), 0) }); err != nil {
		// Not registered with the poller: fall back to blocking this thread.
		_ = rc.Control(func(fd uintptr) { pidfdExited(int(fd), -1) })
	}
	_ = rc.Control(func(fd uintptr) {
		var info unix.Siginfo
		// ECHILD when the shim is not our child: whoever is its parent reaps it.
		_ = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
	})
}

// pidfdExited polls a pidfd, which becomes readable when its process exits.
func pidfdExited(fd int, timeoutMs int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, timeoutMs)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err != nil || n > 0
	}
}

// Signal sends sig to the container's process. The pid is checked to still be a live child of
// this container's shim, so that a stale pid file never gets an unrelated process signalled.
func Signal(dir string, sig unix.Signal) error {
	pid := Pid(dir)
	if pid == 0 {
		return fmt.Errorf("signalling container: %w", ErrNotRunning)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling container process %d: %w", pid, ErrNotRunning)
		}
		return fmt.Errorf("signalling container process %d: %w", pid, err)
	}
	defer unix.Close(fd)
	if !isShimChild(pid, dir) {
		return fmt.Errorf("signalling container process %d: %w", pid, ErrNotRunning)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling container process %d: %w", pid, ErrNotRunning)
		}
		return fmt.Errorf("signalling container process %d: %w", pid, err)
	}
	return nil
}

// isShimChild reports whether pid is a live process whose parent is `cnet shim DIR` for this dir.
func isShimChild(pid int, dir string) bool {
	st, err := readStat(pid)
	if err != nil || st.exited() {
		return false
	}
	return isShimOf(st.ppid, dir)
}

// KillShims kills every `cnet shim DIR` process for one of dirs and returns the directories
// whose shim it signalled; /proc is read once, however many dirs. The daemon calls it at start
// for the containers its records say are not running: a shim there is the leftover of a start
// the previous daemon died in the middle of (one still waiting for its attacher would
// otherwise start the process, unknown to anyone, when its wait ends).
func KillShims(dirs ...string) []string {
	if len(dirs) == 0 {
		return nil
	}
	var killed []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		shimDir, ok := shimDirOf(pid)
		if !ok {
			continue
		}
		for _, dir := range dirs {
			if !sameDir(shimDir, dir) {
				continue
			}
			// Checked again through the pidfd, whose process cannot be another one by now.
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				if isShimOf(pid, dir) && unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
					killed = append(killed, dir)
				}
				unix.Close(fd)
			}
			break
		}
	}
	return killed
}

// isShimOf reports whether pid is `cnet shim DIR` for this dir.
func isShimOf(pid int, dir string) bool {
	shimDir, ok := shimDirOf(pid)
	return ok && sameDir(shimDir, dir)
}

// shimDirOf is the DIR of `cnet shim DIR` when pid is a shim.
func shimDirOf(pid int) (string, bool) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", false
	}
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	if len(args) != 3 || args[1] != "shim" {
		return "", false
	}
	return args[2], true
}

// sameDir reports whether a shim's DIR names dir (by path, else by inode).
func sameDir(shimDir, dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	if filepath.Clean(shimDir) == abs {
		return true
	}
	a, err1 := os.Stat(shimDir)
	b, err2 := os.Stat(abs)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}
